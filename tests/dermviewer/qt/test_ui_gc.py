"""Garbage cycles are freed on the UI thread once a window exists, not on the worker that allocates most.

The full suite segfaulted in shiboken's BindingManager while a window was torn down and a lane thread ran
torch: a cycle holding a Qt wrapper, collected on that thread. Here the cycle is a plain object whose
finaliser records the thread that freed it; the worker allocates far past the collector's threshold.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtWidgets import QApplication

from dermviewer.qt.ui_gc import install_ui_garbage_collector


class _Cycle:
    def __init__(self, freed_on: list[str]) -> None:
        self.me = self
        self.freed_on = freed_on

    def __del__(self) -> None:
        self.freed_on.append(threading.current_thread().name)


def _garbage_then_churn(freed_on: list[str], results: list[list[list[int]]]) -> None:
    _Cycle(freed_on)  # unreachable at once, but only the cyclic collector can free it
    results.append([[i] for i in range(20_000)])  # many times gc's threshold of live allocations (a result)


def _run_on_worker(freed_on: list[str]) -> list[list[list[int]]]:
    results: list[list[list[int]]] = []
    t = threading.Thread(target=_garbage_then_churn, args=(freed_on, results), name="worker")
    t.start()
    t.join()
    return results  # kept by the caller, as a job's result would be


def test_without_the_collector_a_worker_frees_the_cycle(qapp: QApplication) -> None:
    """The hazard itself, so the next test can fail: automatic collection runs on the allocating thread."""
    assert gc.isenabled()
    freed_on: list[str] = []
    results = _run_on_worker(freed_on)
    assert freed_on == ["worker"]
    assert len(results[0]) == 20_000


def test_with_the_collector_the_ui_thread_frees_it(qapp: QApplication, qtbot) -> None:
    collector = install_ui_garbage_collector(qapp)
    assert install_ui_garbage_collector(qapp) is collector  # one per application
    assert not gc.isenabled()
    freed_on: list[str] = []
    results = _run_on_worker(freed_on)
    assert freed_on == []
    qtbot.waitUntil(lambda: bool(freed_on), timeout=5_000)  # the collector's timer, on the event loop
    assert freed_on == [threading.main_thread().name]
    del results
    collector.stop()
    assert gc.isenabled()
