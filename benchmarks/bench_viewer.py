"""Viewer latency figures (printed, never asserted): open-to-differential, open-to-overlay, slider-to-update,
Grad-CAM latency, canvas repaint on a 4000x3000 photo, one interactive prediction while a folder run is going
(the thread budget: interactive work must not wait behind, or fight with, the batch lane), and the longest UI
event-loop stall (a 5 ms QTimer records the gaps between its ticks) during each long job of the one window:
a folder run, a dataset evaluation and a robustness sweep in the research mode, and the review's severity sweep.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py [--folder N] [--eval-photos N]
        [--sweep-photos N] [--only-contention | --only-stalls]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


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


@dataclass(frozen=True)
class Stall:
    """The event loop's gaps while one job ran, from its start to its last result on screen."""

    job: str
    seconds: float
    gaps: list[float]

    def row(self) -> str:
        g = sorted(self.gaps)
        p99 = g[int(0.99 * (len(g) - 1))] if g else float("nan")
        return (f"  {self.job:62s} {self.seconds:7.1f} s {len(g):6d} {statistics.median(g) if g else 0:7.1f} "
                f"{p99:7.1f} {max(g, default=0.0):8.1f}   {sum(x > 100 for x in g):3d}")


def print_stalls(stalls: list[Stall]) -> None:
    print("longest UI event-loop stall during each long job (5 ms heartbeat; gaps in ms):")
    print(f"  {'job':62s} {'wall':>9s} {'ticks':>6s} {'median':>7s} {'p99':>7s} {'longest':>8s}  >100 ms")
    for s in stalls:
        print(s.row())


def measure(app, meter: StallMeter, job: str, start, finished, timeout: float = 900) -> Stall:
    """Start a job with ``start()`` and run the event loop until ``finished()``, the heartbeat going."""
    meter.start()
    t0 = time.perf_counter()
    start()
    wait(app, finished, timeout=timeout)
    seconds = time.perf_counter() - t0
    meter.stop()
    return Stall(job, seconds, list(meter.gaps))


def research_stalls(app, win, meter: StallMeter, tmp: Path, eval_photos: int, sweep_photos: int) -> list[Stall]:
    """The research mode of the same window: evaluate ``eval_photos`` photos of the spec with an empty cache
    (every photo predicted, metrics and gallery filled as results arrive), then a robustness sweep of every
    corruption at levels 1-5 over ``sweep_photos`` of them, the Robustness tab on screen."""
    from dermviewer.state.app_state import Mode
    from dermviewer.state.research.dataset import open_manifest

    win.set_mode(Mode.RESEARCH)
    panel = win.research_panel
    wait(app, lambda: panel.session.result is not None and not panel.batch.running, timeout=300)  # its OOF file
    panel.cache_dir = tmp / "evaluation-cache"  # empty: nothing is served from the user's cache
    panel.session.set_dataset(open_manifest(SPEC, taxonomy=win.state.model.predictor.bundle.taxonomy,
                                            limit=eval_photos))
    app.processEvents()
    out = [measure(app, meter, f"dataset evaluation (research, {eval_photos} photos)", panel.evaluate,
                   lambda: not panel.batch.running)]
    if panel.session.result is None or not panel.session.result.done.all():
        raise SystemExit("the evaluation did not finish")
    panel.tabs.setCurrentWidget(panel.robustness)
    panel.robustness.n_photos.setValue(sweep_photos)
    corruptions = sum(cb.isChecked() for cb in panel.robustness.checks.values())
    out.append(measure(app, meter, f"robustness sweep (research, {sweep_photos} photos x {corruptions} "
                       "corruptions x 5)", panel.robustness.run.click, lambda: not panel.batch.running))
    win.set_mode(Mode.REVIEW)
    return out


def severity_sweep_stall(app, win, meter: StallMeter, photo: Path) -> Stall:
    """The review's "Sweep severities" on one photo (25 predictions), its plot on screen and redrawn."""
    win.state.cases.clear()
    time_signal(app, win.controller.case_shown, lambda: win.controller.open_paths([photo]))  # the sweep's photo
    t0 = time.perf_counter()
    wait(app, lambda: time.perf_counter() - t0 > 3)  # its overlays and Grad-CAM drawn: the sweep queues alone
    win.tabs.setCurrentIndex(1)  # What-if: builds the plot the sweep draws into
    app.processEvents()
    done: list[int] = []
    messages: list[str] = []
    win.controller.sweep_finished.connect(lambda: done.append(1))
    win.state.message.connect(lambda _level, text: messages.append(text))
    out = measure(app, meter, "severity sweep (review, 1 photo x 5 corruptions x 5)", win.whatif_panel.sweep.click,
                  lambda: bool(done))
    result = win.controller.coordinator.sweep_result
    points = sum(len(c) - 1 for c in result.curves.values()) if result is not None else 0
    if points != 25:
        raise SystemExit(f"the severity sweep gave {points} of 25 points: {messages}")
    return out


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


def stalls(app, win, photos: list[Path], big: Path, tmp: Path, args: argparse.Namespace) -> list[Stall]:
    """The event loop's longest gaps during the folder run (with the 4000x3000 photo's analysis in flight), a
    dataset evaluation and a robustness sweep in the research mode, and the review's severity sweep."""
    folder = tmp / "folder"
    folder.mkdir(exist_ok=True)
    for p in photos[10 : 10 + args.folder]:
        (folder / p.name).write_bytes(p.read_bytes())
    win.state.cases.clear()
    meter = StallMeter()
    done: list[int] = []
    win.controller.folder_finished.connect(lambda: done.append(1))
    out = [measure(app, meter, f"folder run ({args.folder} photos + the 4000x3000 photo opened)",
                   lambda: win.controller.open_paths([folder, big]), lambda: bool(done), timeout=600)]
    out += research_stalls(app, win, meter, tmp, args.eval_photos, max(args.sweep_photos, 6))
    out.append(severity_sweep_stall(app, win, meter, photos[3]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folder", type=int, default=20, help="photos in the stall test's folder run")
    ap.add_argument("--eval-photos", type=int, default=48, help="photos in the research evaluation's stall test")
    ap.add_argument("--sweep-photos", type=int, default=6, help="photos in the research robustness sweep (min 6)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--only-contention", action="store_true",
                      help="only the interactive-prediction-during-a-folder-run figure")
    only.add_argument("--only-stalls", action="store_true",
                      help="only the event-loop stalls during a folder run, an evaluation and the sweeps")
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
    big = tmp / "big_4000x3000.png"
    save_image(big, cv2.resize(load_image(photos[0]), (4000, 3000), interpolation=cv2.INTER_CUBIC))
    if args.only_stalls:
        print_stalls(stalls(app, win, photos, big, tmp, args))
        win.close()
        return 0
    contention = interactive_during_folder_run(app, win, photos, tmp, args.repeats, max(args.folder, 30))
    if args.only_contention:
        print_contention(contention)
        win.close()
        return 0
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

    found = stalls(app, win, photos, big, tmp, args)
    print(f"{'measure':58s} {'median ms':>10s} {'max ms':>10s}")
    for name, vals in rows:
        print(f"{name:58s} {statistics.median(vals):10.1f} {max(vals):10.1f}")
    print_stalls(found)
    print_contention(contention)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
