"""Research jobs on worker threads until the app's shared job runner (issue 10) takes them over.

Each job is one of ``dermviewer.state.research``'s plain generators, given a cancel check. A
:class:`JobSlot` runs at most one job at a time (starting another cancels the first), and drops every
signal of a job it no longer runs (a ticket per start), so a late result never lands on a newer view.
superqt's ``GeneratorWorker`` turns each exception into ``errored`` on the UI thread. Items cross
threads boxed: PySide6 mis-counts ``None`` sent through ``Signal(object)`` across threads.

Thread budget: the panel owns two slots (a batch slot and an inspector slot), so research work adds
at most two threads to superqt's global pool; torch's own thread count is the app's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

__all__ = ["JobSlot"]

_log = logging.getLogger(__name__)

Progress = Callable[[Any], None]


class _Box:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class JobSlot(QObject):
    busy_changed = Signal(bool)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._ticket = 0
        self._worker: Any = None
        self._stop: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, job: Callable[[Callable[[], bool]], Iterator[Any]], *, on_item: Progress | None = None,
              on_done: Callable[[], None] | None = None, on_error: Callable[[Exception], None] | None = None) -> None:
        """Run ``job(cancelled)`` (a generator); ``on_item`` gets each yielded item, ``on_done`` the end."""
        self.cancel()
        self._ticket += 1
        ticket = self._ticket
        stop = threading.Event()
        self._stop = stop

        def run() -> Iterator[_Box]:
            for item in job(stop.is_set):
                if stop.is_set():
                    break
                yield _Box(item)
            return _Box(None)

        worker = create_worker(run, _start_thread=False, _ignore_errors=True)  # errors go to on_error or the log
        live = lambda: ticket == self._ticket  # noqa: E731 -- the ticket check every callback shares
        if on_item is not None:
            worker.yielded.connect(lambda box: on_item(box.value) if live() else None)
        report = on_error or (lambda exc: _log.error("research job %s failed: %s", self.objectName(), exc))
        worker.errored.connect(lambda exc: report(exc) if live() else None)
        worker.finished.connect(lambda: self._finished(ticket, stop, on_done))
        self._worker = worker
        self.busy_changed.emit(True)
        worker.start()

    def _finished(self, ticket: int, stop: threading.Event, on_done: Callable[[], None] | None) -> None:
        if ticket != self._ticket:
            return
        self._worker, self._stop = None, None
        self.busy_changed.emit(False)
        if on_done is not None and not stop.is_set():
            on_done()

    def cancel(self) -> None:
        if self._worker is not None:
            if self._stop is not None:
                self._stop.set()
            self._worker.quit()
            self._worker, self._stop = None, None
            self._ticket += 1
            self.busy_changed.emit(False)

    def wait(self, timeout_ms: int = 10000) -> None:
        """Used on close: cancel, then wait for the thread so nothing runs against a deleted widget."""
        from PySide6.QtCore import QThreadPool

        self.cancel()
        QThreadPool.globalInstance().waitForDone(timeout_ms)
