"""Annotate-mode figures (printed, never asserted) on a 10,000-photo project: synthetic manifest rows that
point at the 666 real PAD-UFES-20 photos (each used about 15 times under its own id).

1. import time (hashing, labels, optionally the lesion masks as outlines);
2. time to open the project: the store (integrity check, migrations) plus the session (photos, every label),
   and the Qt panel's open (list of 10,000 rows, undo stack from the log, first photo);
3. keypress-to-saved latency, p50/p95/max: a key event sent to the panel until its edit is committed
   (SQLite WAL, synchronous=FULL: on disk) and drawn as saved -- the target is p95 under 50 ms;
4. review by a second annotator: building the queue of the first one's pending changes (Ctrl+R), the
   A-key-to-saved latency of a decision, and the agreement (kappa per field, outline Dice) over the whole
   project, which the app computes on the job runner (here timed on its own).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_annotate.py [--photos 10000] [--keys 300] [--masks]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"


def synthetic_manifest(folder: Path, n: int) -> Path:
    with (DATA / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows, cols = list(reader), list(reader.fieldnames or [])
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for i in range(n):
            r = dict(rows[i % len(rows)])
            r["img_id"] = f"{Path(r['img_id']).stem}_{i // len(rows)}.png"
            r["image"] = str(DATA / r["image"])
            w.writerow(r)
    if args_masks:
        (folder / "masks").symlink_to(DATA / "masks")
    return out


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))]


args_masks = False


def main() -> None:
    global args_masks
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=300)
    ap.add_argument("--masks", action="store_true", help="import masks/ as outlines (found by the real photo's stem)")
    a = ap.parse_args()
    args_masks = a.masks
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-bench-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from dermviewer.state.annotate import import_manifest, open_store
    from dermviewer.state.annotate.session import AnnotateSession
    from engine.taxonomy import load_taxonomy

    tmp = Path(tempfile.mkdtemp(prefix="dv-bench-annotate-"))
    manifest = synthetic_manifest(tmp, a.photos)
    project = tmp / "bench.dvproj"
    t0 = time.perf_counter()
    store = open_store(project, load_taxonomy("pad_ufes_20"), create=True)
    report = import_manifest(store, manifest, masks=a.masks)
    store.close()
    t_import = time.perf_counter() - t0
    size = project.stat().st_size / 2**20
    print(f"import: {report.added} photos, {report.outlines} outlines in {t_import:.1f} s ({size:.1f} MiB project)")

    opens = []
    for _ in range(3):
        t0 = time.perf_counter()
        store = open_store(project)
        session = AnnotateSession(store, "bench")
        opens.append(time.perf_counter() - t0)
        store.close()
    print(f"open (store + session, {len(session.photos)} photos): best {min(opens):.3f} s, first {opens[0]:.3f} s")

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.annotate import AnnotatePanel
    from dermviewer.qt.workers import QtExecutor
    from dermviewer.state.executor import ComputeSlots
    from dermviewer.state.tracked_jobs import TrackedJobs

    app = QApplication.instance() or QApplication(sys.argv[:1])
    jobs = TrackedJobs(QtExecutor(slots=ComputeSlots(1)))  # as in the app: the agreement runs off the UI thread
    panel = AnnotatePanel(jobs=jobs)
    panel.resize(1300, 800)
    panel.show()
    t0 = time.perf_counter()
    panel.open_project(project, "bench")
    app.processEvents()
    print(f"open (Qt panel: list, undo stack, first photo): {time.perf_counter() - t0:.3f} s")

    digits = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5, Qt.Key.Key_6]
    latency: list[float] = []
    cpu: list[float] = []
    for i in range(a.keys):
        key = digits[i % 6] if i % 3 else Qt.Key.Key_Right
        t0, c0 = time.perf_counter(), time.process_time()
        QTest.keyClick(panel, key)
        app.processEvents()  # the indicator and the list row are drawn
        if key != Qt.Key.Key_Right:
            if panel.session is None or panel.session.save_state != "saved":
                raise SystemExit(f"not saved: {panel.saved.text()}")
            latency.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    print(f"keypress-to-saved over {len(latency)} label keys: p50 {statistics.median(latency):.1f} ms, "
          f"p95 {pct(latency, 0.95):.1f} ms, max {max(latency):.1f} ms wall clock (target p95 < 50 ms); "
          f"CPU time of this process p50 {statistics.median(cpu):.1f} ms, p95 {pct(cpu, 0.95):.1f} ms "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    t0 = time.perf_counter()
    for _ in range(20):
        QTest.keyClick(panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    print(f"undo: {(time.perf_counter() - t0) / 20 * 1000:.1f} ms per step")

    from dermviewer.state.annotate.reviewing import agreement

    panel.open_project(project, "reviewer")
    t0 = time.perf_counter()
    panel.review_box.owner.setCurrentText("bench")
    QTest.keyClick(panel, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    app.processEvents()
    queue = panel.review
    assert queue is not None
    t_queue = time.perf_counter() - t0
    decided: list[float] = []
    for _ in range(min(50, len(queue.entries))):
        t0 = time.perf_counter()
        QTest.keyClick(panel, Qt.Key.Key_A)
        app.processEvents()
        decided.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    agreement(panel.session.store, "bench", "reviewer")
    t_agree = time.perf_counter() - t0
    while jobs.busy:  # the agreement jobs the decisions asked for (not a tight loop: with PySide6 6.12 on
        app.processEvents()  # Python 3.11 each call takes a reference from None, and a spin drained it)
        time.sleep(0.01)
    print(f"review: Ctrl+R to the first of {len(queue.entries)} pending changes {t_queue:.2f} s; "
          f"A-key-to-saved over {len(decided)} decisions: p50 "
          f"{statistics.median(decided) if decided else 0:.1f} ms, p95 {pct(decided, 0.95) if decided else 0:.1f} "
          f"ms; agreement over {len(panel.session.photos)} photos {t_agree:.2f} s (on the job runner in the app)")
    panel.close_project()
    jobs.shutdown()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: PySide6 6.12 can crash deallocating widgets at exit


if __name__ == "__main__":
    main()
