"""Research jobs on the app's shared job runner (issue 10): lanes, compute slots and the thread budget.

Each job is one of ``dermviewer.state.research``'s plain generators, given a cancel check. A
:class:`JobSlot` runs at most one job at a time on one lane (starting another cancels the first) and
drops every callback of a job it no longer runs (a ticket per start), so a late result never lands on
a newer view. The jobs go through the window's :class:`~dermviewer.state.tracked_jobs.TrackedJobs`
(``controller.coordinator.jobs``), so "busy", cancelling and the compute slots cover them with the
review mode's; a panel built on its own (tests, benchmarks) gets a private
:class:`~dermviewer.qt.workers.QtExecutor` with one compute slot.

Lanes: the evaluation, sweeps and localisation are ``BATCH`` (they give way to interactive work between
batches), the inspector and the analyses ``EXPLAIN``, thumbnails ``INTERACTIVE``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Signal

from dermviewer.state.executor import JobHandle, Lane
from dermviewer.state.tracked_jobs import TrackedJobs

__all__ = ["JobSlot", "private_jobs"]

_log = logging.getLogger(__name__)
_DONE = object()  # a generator job's return value (never None: see dermviewer.qt.workers._Box)

Progress = Callable[[Any], None]


def private_jobs(parent: QObject) -> TrackedJobs:
    """A job runner of the panel's own: one thread per lane, one compute slot."""
    from dermviewer.qt.workers import QtExecutor
    from dermviewer.state.executor import ComputeSlots

    return TrackedJobs(QtExecutor(parent, ComputeSlots(1)))


class JobSlot(QObject):
    busy_changed = Signal(bool)

    def __init__(self, name: str, jobs: TrackedJobs, lane: Lane, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.jobs, self.lane = jobs, lane
        self._ticket = 0
        self._handle: JobHandle | None = None
        self._stop: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self, job: Callable[[Callable[[], bool]], Iterator[Any]], *, on_item: Progress | None = None,
              on_done: Callable[[], None] | None = None, on_error: Callable[[Exception], None] | None = None) -> None:
        """Run ``job(cancelled)`` (a generator); ``on_item`` gets each yielded item, ``on_done`` the end."""
        self.cancel()
        self._ticket += 1
        ticket = self._ticket
        stop = threading.Event()
        self._stop = stop

        def run() -> Iterator[Any]:
            yield from job(stop.is_set)
            return _DONE

        def live() -> bool:
            return ticket == self._ticket

        def item(value: Any) -> None:
            if live() and on_item is not None:
                on_item(value)

        def done(_value: Any) -> None:
            if live():
                self._end()
                if on_done is not None:
                    on_done()

        def failed(exc: Exception) -> None:
            if live():
                self._end()
                (on_error or (lambda e: _log.error("research job %s failed: %s", self.objectName(), e)))(exc)

        self._handle = self.jobs.run(run, self.lane, on_result=done, on_error=failed, on_progress=item,
                                     stale_with_model=False)  # the slot's ticket decides what is stale
        self.busy_changed.emit(True)

    def _end(self) -> None:
        self._handle, self._stop = None, None
        self.busy_changed.emit(False)

    def cancel(self) -> None:
        if self._handle is not None:
            if self._stop is not None:
                self._stop.set()
            self.jobs.cancel(self._handle)
            self._ticket += 1
            self._end()
