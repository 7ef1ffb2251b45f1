"""The Qt executor (superqt workers, one single-thread pool per lane): results, progress and errors arrive on
the UI thread, a RuntimeError is reported rather than swallowed, a cancelled generator stops between items
and is closed, and every compute slot is given back."""

from __future__ import annotations

import threading

from dermviewer.qt.workers import QtExecutor
from dermviewer.state.executor import Lane

TIMEOUT = 20_000


def test_results_progress_and_errors_arrive_on_the_ui_thread(qtbot) -> None:
    ex = QtExecutor()
    ui = threading.get_ident()
    got: list[object] = []
    threads: set[int] = set()

    def record(value: object) -> None:
        threads.add(threading.get_ident())
        got.append(value)

    def count():
        yield from range(3)
        return "counted"

    def torch_like_failure():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    ex.submit(lambda: None, on_result=lambda v: record(("none", v)))
    ex.submit(count, on_result=record, on_progress=record, lane=Lane.BATCH)
    ex.submit(torch_like_failure, on_result=record, on_error=record, lane=Lane.EXPLAIN)
    qtbot.waitUntil(lambda: ex.active == 0, timeout=TIMEOUT)
    assert ("none", None) in got
    assert [v for v in got if isinstance(v, int) or v == "counted"] == [0, 1, 2, "counted"]
    errors = [v for v in got if isinstance(v, Exception)]
    assert len(errors) == 1 and type(errors[0]) is RuntimeError and "mat1" in str(errors[0])
    assert threads == {ui}
    assert all(n == 0 for n in ex.slots.held.values())


def test_a_cancelled_generator_stops_between_items_and_is_closed(qtbot) -> None:
    ex = QtExecutor()
    closed = threading.Event()
    progress: list[int] = []
    results: list[object] = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
                threading.Event().wait(0.002)  # don't flood the UI thread with queued items
        finally:
            closed.set()

    box = []

    def on_progress(i: int) -> None:
        progress.append(i)
        if i == 2:
            box[0].cancel()

    box.append(ex.submit(endless, on_result=results.append, on_progress=on_progress, lane=Lane.BATCH))
    qtbot.waitUntil(lambda: ex.active == 0, timeout=TIMEOUT)
    assert progress == [0, 1, 2]
    assert results == []
    assert closed.is_set()
    assert box[0].cancelled and box[0].finished
    assert all(n == 0 for n in ex.slots.held.values())


def test_overlapping_jobs_leave_the_process_warning_state_alone(qtbot) -> None:
    """superqt's own run() swaps ``warnings`` state per worker; two overlapping workers ending in start
    order used to leave ``warnings.showwarning`` pointing at a finished worker (every later warning lost)."""
    import warnings

    from PySide6.QtCore import Qt

    from dermviewer.state.executor import ComputeSlots

    shown, filters = warnings.showwarning, list(warnings.filters)
    ex = QtExecutor(slots=ComputeSlots(2))
    b_started, a_finished = threading.Event(), threading.Event()

    def a():
        assert b_started.wait(10)
        return "a"

    def b():
        b_started.set()
        assert a_finished.wait(10)
        return "b"

    ha = ex.submit(a, lane=Lane.INTERACTIVE)
    ha.worker.finished.connect(a_finished.set, Qt.ConnectionType.DirectConnection)
    ex.submit(b, lane=Lane.EXPLAIN)
    qtbot.waitUntil(lambda: ex.active == 0, timeout=TIMEOUT)
    assert a_finished.is_set()
    assert warnings.showwarning is shown
    assert warnings.filters == filters
