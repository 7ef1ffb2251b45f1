"""Figures for the shipped models' cards (printed, never asserted): per-photo latency of each bundle in
``resources/models`` (torch fp32 / bf16 autocast, ONNX Runtime fp32 / int8 MatMul-only) at batch 1 on
real PAD-UFES-20 photos, int8 top-1 agreement with fp32, and the CV BMA stored with each model.

    .venv/bin/python benchmarks/bench_shipped_models.py [--photos 60] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"


def _p50(fn, x, repeats: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()

    from engine.bundle import load_bundle
    from engine.export import OnnxBackend, export_onnx, quantize_int8
    from engine.imageio import load_image
    from engine.preprocess import preprocess

    torch.set_num_threads(os.cpu_count() or 1)
    photos = sorted(DATA.glob("*.jpg"))[: args.photos]
    print(f"load average {os.getloadavg()[0]:.2f}; {torch.get_num_threads()} threads; {len(photos)} photos")
    for path in sorted((ROOT / "resources" / "models").glob("*.dmvb")):
        bundle = load_bundle(path)
        model = bundle.build_model("cpu")
        x1 = torch.from_numpy(preprocess(load_image(photos[0]), bundle.preprocess))[None]
        print(f"== {path.name}: {bundle.name} v{bundle.version}, {bundle.model_config.img_size} px, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params"
              + (" (UNTRAINED placeholder)" if bundle.untrained else ""))

        def torch_run(x: torch.Tensor, bf16: bool = False, model: torch.nn.Module = model) -> None:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                model(x)

        print(f"  torch fp32 p50 {_p50(torch_run, x1, args.repeats):7.1f} ms/photo")
        print(f"  torch bf16 p50 {_p50(lambda x: torch_run(x, True), x1, args.repeats):7.1f} ms/photo")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(bundle, Path(tmp) / "m.onnx")
            q = quantize_int8(fp32, Path(tmp) / "m.int8.onnx", images=[str(p) for p in photos])
            for label, onnx_path in (("ORT fp32", fp32), ("ORT int8", q.path)):
                be = OnnxBackend(onnx_path, device="cpu")
                print(f"  {label:10} p50 {_p50(be.run, x1.numpy(), args.repeats):7.1f} ms/photo")
            print(f"  {q.summary()}")
        cv = path.parent / f"{path.stem}.cv.json"
        if cv.is_file():
            st = json.loads(cv.read_text())["summary"].get("disease_fused.balanced_accuracy")
            if st:
                print(f"  CV BMA {100 * st['mean']:.1f} ± {100 * st['std']:.1f} % ({cv.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
