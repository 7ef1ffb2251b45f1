"""Viewer latency figures (printed, never asserted): open-to-differential, open-to-overlay, slider-to-update,
Grad-CAM latency, canvas repaint on a 4000x3000 photo, the longest UI event-loop stall while inference
runs (a 5 ms QTimer records the gaps between its ticks), and one interactive prediction while a folder run
is going (the thread budget: interactive work must not wait behind, or fight with, the batch lane).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py [--folder N] [--only-contention]
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
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"


class StallMeter:
    """Gaps between 5 ms timer ticks; anything well above 5 ms is time the event loop could not run."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1e3)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return max(self.gaps, default=0.0)


def wait(app, cond, timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("timed out")
    return (time.perf_counter() - t0) * 1e3


def time_signal(app, signal, action) -> float:
    """Milliseconds from ``action()`` to the first emission of ``signal``."""
    got: list[float] = []

    def record() -> None:
        got.append(time.perf_counter())

    signal.connect(record)
    t0 = time.perf_counter()
    action()
    wait(app, lambda: bool(got))
    signal.disconnect(record)
    return (got[0] - t0) * 1e3


def interactive_during_folder_run(app, win, photos: list[Path], tmp: Path, repeats: int,
                                  folder_size: int) -> dict[str, list[float]]:
    """Open one photo at a time while a folder run predicts ``folder_size`` others, and time it.

    ``open-to-shown`` is the click-to-result latency; ``model forward`` is the Predictor's own inference time
    for that photo (``Prediction.timings_ms``), i.e. how much the two lanes slow each other's torch calls.
    Then the same photos again with the folder run finished, as the uncontended reference."""
    folder = tmp / "contention"
    folder.mkdir(exist_ok=True)
    for p in photos[200 : 200 + folder_size]:
        (folder / p.name).write_bytes(p.read_bytes())
    singles = photos[400 : 400 + repeats]
    out: dict[str, list[float]] = {"busy open": [], "busy forward": [], "idle open": [], "idle forward": []}
    win.state.cases.clear()
    progress: list[int] = []
    finished: list[int] = []
    on_progress = lambda done, _total: progress.append(done)  # noqa: E731
    on_finished = lambda: finished.append(1)  # noqa: E731
    win.controller.folder_progress.connect(on_progress)
    win.controller.folder_finished.connect(on_finished)
    win.controller.open_paths([folder])
    wait(app, lambda: any(d >= 1 for d in progress), timeout=300)
    for src in singles:
        if finished:
            break
        t = time_signal(app, win.controller.case_shown, lambda s=src: win.controller.open_paths([s]))
        out["busy open"].append(t)
        out["busy forward"].append(win.state.view.prediction.timings_ms["inference"])
    busy_done = progress[-1] if progress else 0
    win.controller.cancel_folder()
    wait(app, lambda: bool(finished), timeout=300)
    win.controller.folder_progress.disconnect(on_progress)
    win.controller.folder_finished.disconnect(on_finished)
    out["folder photos done meanwhile"] = [float(busy_done)]
    win.state.cases.clear()
    for src in singles:
        t = time_signal(app, win.controller.case_shown, lambda s=src: win.controller.open_paths([s]))
        out["idle open"].append(t)
        out["idle forward"].append(win.state.view.prediction.timings_ms["inference"])
    return out


def print_contention(c: dict[str, list[float]]) -> None:
    print("one interactive prediction (300x300 photo) while a folder run is going, vs with nothing else running:")
    for key, label in (("busy open", "open-to-shown, folder run going"),
                       ("busy forward", "model forward, folder run going"),
                       ("idle open", "open-to-shown, idle"), ("idle forward", "model forward, idle")):
        vals = c[key]
        if vals:
            print(f"  {label:56s} {statistics.median(vals):10.1f} {max(vals):10.1f}  (n={len(vals)})")
        else:
            print(f"  {label:56s} {'-':>10s}  (the folder run ended first)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folder", type=int, default=20, help="photos in the stall test's folder run")
    ap.add_argument("--only-contention", action="store_true",
                    help="only the interactive-prediction-during-a-folder-run figure")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-bench-"))
    import cv2
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.app import create_window
    from dermviewer.state.settings import Settings
    from engine.imageio import load_image, save_image

    app = QApplication(sys.argv[:1])
    win = create_window([], settings=Settings(device="cpu"))
    win.resize(1500, 940)
    win.show()
    wait(app, lambda: win.state.model.ready)
    stamps: dict[str, float] = {}
    orig_findings, orig_overlays = win.findings.show_prediction, win.canvas.set_overlays

    def findings_hook(*a, **k):
        orig_findings(*a, **k)
        stamps.setdefault("differential", time.perf_counter())

    def overlay_hook(*a, **k):
        orig_overlays(*a, **k)
        if win.canvas.overlay_kinds():
            stamps.setdefault("overlay", time.perf_counter())

    win.findings.show_prediction = findings_hook  # type: ignore[method-assign]
    win.canvas.set_overlays = overlay_hook  # type: ignore[method-assign]

    photos = sorted(DATA.glob("*.jpg"))
    tmp = Path(tempfile.mkdtemp(prefix="dv-bench-photos-"))
    import torch

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, torch intra-op threads "
          f"{torch.get_num_threads()}")
    contention = interactive_during_folder_run(app, win, photos, tmp, args.repeats, max(args.folder, 30))
    if args.only_contention:
        print_contention(contention)
        win.close()
        return 0
    big = tmp / "big_4000x3000.png"
    save_image(big, cv2.resize(load_image(photos[0]), (4000, 3000), interpolation=cv2.INTER_CUBIC))
    rows: list[tuple[str, list[float]]] = []
    for label, sources in (("300x300 PAD-UFES-20", photos[1 : 1 + args.repeats]), ("4000x3000", [big] * 1)):
        diff, over = [], []
        for src in sources:
            win.state.cases.clear()
            stamps.clear()
            t0 = time.perf_counter()
            win.controller.open_paths([src])
            wait(app, lambda: "overlay" in stamps and "differential" in stamps)
            diff.append((stamps["differential"] - t0) * 1e3)
            over.append((stamps["overlay"] - t0) * 1e3)
        rows += [(f"open-to-differential ({label})", diff), (f"open-to-overlay ({label})", over)]

    # canvas repaint at fit and at 1:1 on the 4000x3000 photo (pyramid level choice)
    for name, action in (("fit", win.canvas.fit), ("1:1", win.canvas.actual_size)):
        action()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            win.canvas.viewport().grab()
            ts.append((time.perf_counter() - t0) * 1e3)
        rows.append((f"canvas repaint at {name} (4000x3000)", ts))
    win.canvas.fit()

    # slider-to-update: what-if on the big photo and a small one (includes the 150 ms debounce)
    for label, src in (("300x300", photos[1]), ("4000x3000", big)):
        win.state.cases.clear()
        stamps.clear()
        win.controller.open_paths([src])
        wait(app, lambda: "overlay" in stamps)
        slider = win.whatif_panel.sliders["sp_amount"]
        ts = [time_signal(app, win.controller.whatif_shown, lambda v=v, s=slider: s.setValue(v))
              for v in (10, 20, 30, 40, 50)[: args.repeats]]
        rows.append((f"slider-to-update ({label}, incl. 150 ms debounce)", ts))
        win.whatif_panel.reset_params()
        app.processEvents()

    # Grad-CAM latency
    ts = [time_signal(app, win.controller.gradcam_shown, lambda i=i: win.controller.request_gradcam("disease", i % 6))
          for i in range(args.repeats)]
    rows.append(("click-to-Grad-CAM (4000x3000 photo on screen)", ts))

    # longest event-loop stall while a folder run and the current photo's analysis are in flight
    folder = tmp / "folder"
    folder.mkdir()
    for p in photos[10 : 10 + args.folder]:
        (folder / p.name).write_bytes(p.read_bytes())
    win.state.cases.clear()
    meter = StallMeter()
    done = []
    win.controller.folder_finished.connect(lambda: done.append(1))
    meter.start()
    win.controller.open_paths([folder, big])
    wait(app, lambda: bool(done), timeout=300)
    worst = meter.stop()
    gaps = meter.gaps
    print(f"{'measure':58s} {'median ms':>10s} {'max ms':>10s}")
    for name, vals in rows:
        print(f"{name:58s} {statistics.median(vals):10.1f} {max(vals):10.1f}")
    print(f"{'longest UI stall during folder run (' + str(args.folder) + ' photos + 4000x3000 open)':58s} "
          f"{statistics.median(gaps):10.1f} {worst:10.1f}")
    print(f"ticks: {len(gaps)}, gaps > 50 ms: {sum(g > 50 for g in gaps)}, > 100 ms: {sum(g > 100 for g in gaps)}")
    print_contention(contention)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
