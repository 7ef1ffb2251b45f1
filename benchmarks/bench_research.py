"""Research-mode figures (printed, never asserted), on the shared PAD-UFES-20 photos and the bundled model:

1. evaluation throughput (photos/s) reading from an HDF5 pack vs decoding the JPEG files;
2. time to reopen a cached evaluation of all 666 photos (open the manifest, hash the photos, read the
   cache, metrics, gallery table, neighbour index) -- the target is under 1 s -- and the attribute mAP
   that the panel computes afterwards in the background;
3. the longest event-loop stall of the research panel while an evaluation runs in its worker
   (a 5 ms QTimer records the gaps between its ticks).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_research.py [--threads 2] [--pack-photos 96]

The full evaluation of the 666 photos (needed once to fill the cache) runs first and is timed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


def _evaluate(predictor, ds, cache=None, batch_size: int = 16):  # type: ignore[no-untyped-def]
    from dermviewer.state.research.evaluation import run_evaluation

    t0 = time.perf_counter()
    items = list(run_evaluation(predictor, ds, cache, batch_size=batch_size))
    return items[-1], time.perf_counter() - t0


def throughput(predictor, n: int, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from dermviewer.state.research.dataset import open_manifest
    from dermviewer.state.research.pack import open_pack
    from training.data.manifest import read_manifest
    from training.data.pack import pack
    from training.data.spec import load_spec

    manifest = read_manifest(load_spec(SPEC)).subset(np.arange(n))
    packed = pack(manifest, tmp / "bench.h5", size=256, workers=1)
    jpeg_ds = open_manifest(SPEC, taxonomy=predictor.bundle.taxonomy, limit=n)
    pack_ds = open_pack(packed.path, predictor.bundle.taxonomy)
    _evaluate(predictor, open_manifest(SPEC, limit=16))  # warm-up: first batches allocate
    for name, ds in (("JPEG files", jpeg_ds), ("HDF5 pack (256 px)", pack_ds)):
        last, seconds = _evaluate(predictor, ds)
        print(f"  {name:<20} {n} photos in {seconds:6.2f} s = {n / seconds:6.1f} photos/s")
        if last.result is None or not last.result.done.all():
            raise SystemExit(f"{name}: the evaluation did not finish")


def reopen(predictor, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from dermviewer.state.research.cache import EvaluationCache
    from dermviewer.state.research.dataset import open_manifest
    from dermviewer.state.research.evaluation import model_checksum
    from dermviewer.state.research.metrics import attribute_metrics
    from dermviewer.state.research.session import ResearchSession, prepare_result

    key = model_checksum(predictor)
    ds = open_manifest(SPEC, taxonomy=predictor.bundle.taxonomy)
    last, seconds = _evaluate(predictor, ds, EvaluationCache(cache_dir, key, predictor.bundle.name))
    print(f"  first evaluation of {len(ds)} photos: {seconds:.1f} s ({len(ds) / seconds:.1f} photos/s), cached")
    times = []
    deferred: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        ds = open_manifest(SPEC, taxonomy=predictor.bundle.taxonomy)
        t1 = time.perf_counter()
        last, _ = _evaluate(predictor, ds, EvaluationCache(cache_dir, model_checksum(predictor)))
        t2 = time.perf_counter()
        session = ResearchSession()
        session.set_dataset(ds)
        session.set_result(last.result, prepare_result(ds, last.result, attributes=False))
        t3 = time.perf_counter()
        session.add_attribute_metrics(last.result, attribute_metrics(ds, last.result))
        deferred.append(time.perf_counter() - t3)
        if last.predicted or last.from_cache != len(ds):
            raise SystemExit("the reopened evaluation was not served from the cache")
        times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
    best = min(times)
    med = statistics.median(t[0] for t in times)
    print(f"  reopen cached evaluation of {len(ds)} photos: median {med * 1e3:.0f} ms, best {best[0] * 1e3:.0f} ms "
          f"(manifest {best[1] * 1e3:.0f} + hash & cache read {best[2] * 1e3:.0f} + metrics/table/neighbours "
          f"{best[3] * 1e3:.0f} ms; target < 1000 ms)")
    print(f"  then, in the background, the attribute head's mAP-class/-image: median "
          f"{statistics.median(deferred) * 1e3:.0f} ms (engine.metrics.multilabel_report: one AP per photo)")


def stall(n: int, cache_dir: Path) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import resources
    from dermviewer.qt.research import ResearchPanel
    from dermviewer.state.app_state import AppState
    from dermviewer.state.research.dataset import open_manifest
    from dermviewer.state.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    state = AppState(Settings(device="cpu"))
    state.model.load(resources.default_model_path(), device="cpu")
    panel = ResearchPanel(state)
    panel.cache_dir = cache_dir  # empty: every photo is predicted
    panel.resize(1400, 860)
    panel.show()
    while panel.session.result is None:  # the default OOF file opens on show
        app.processEvents()
        time.sleep(0.005)
    panel.session.set_dataset(open_manifest(SPEC, limit=n))
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1e3)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    t0 = time.perf_counter()
    panel.evaluate()
    last[0] = time.perf_counter()
    timer.start()
    while panel.batch.running:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    seconds = time.perf_counter() - t0
    gaps.sort()
    p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
    print(f"  {n} photos evaluated in the panel's worker in {seconds:.1f} s; event-loop ticks {len(gaps)}, "
          f"longest stall {max(gaps):.0f} ms, p99 {p99:.0f} ms, median {statistics.median(gaps):.1f} ms "
          f"(timer interval 5 ms)")
    panel.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the whole budget)")
    ap.add_argument("--pack-photos", type=int, default=64)
    ap.add_argument("--stall-photos", type=int, default=64)
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "reopen", "stall"])
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="dv-bench-research-"))
    os.environ["DERMVIEWER_CACHE_DIR"] = str(tmp / "cache")
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", str(tmp / "config"))
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    import resources
    from engine.inference import Predictor

    predictor = Predictor(resources.default_model_path(), device="cpu")
    print(f"model {predictor.bundle.name} ({resources.default_model_path().name}), torch threads {args.threads}, "
          f"input {predictor.bundle.preprocess.img_size} px, batch 16")
    if "throughput" not in args.skip:
        print("Evaluation throughput:")
        throughput(predictor, args.pack_photos, tmp)
    if "reopen" not in args.skip:
        print("Cached evaluation:")
        reopen(predictor, tmp / "cache" / "evaluations")
    if "stall" not in args.skip:
        print("UI responsiveness while evaluating:")
        stall(args.stall_photos, tmp / "stall-cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
