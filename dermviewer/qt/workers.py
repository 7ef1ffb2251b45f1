"""Worker threads: a QRunnable whose every exception becomes an ``errored`` signal (superqt's habit).

A function returning a generator reports each yielded item through ``progress`` and can be cancelled
between items. :class:`JobRunner` keeps the Python side of running workers alive until they finish.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

__all__ = ["JobRunner", "Worker", "WorkerSignals"]


class _Box:
    """Results cross threads boxed: PySide6 mis-counts references to ``None`` sent through
    ``Signal(object)`` across threads (a crash after enough ``None`` results), so nothing is sent bare."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class WorkerSignals(QObject):
    finished = Signal(object)  # a _Box
    errored = Signal(object)
    progress = Signal(object)
    ended = Signal()  # always last, also after a cancel: lets the runner forget the worker


class Worker(QRunnable):
    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = WorkerSignals()
        self.cancelled = False
        self.setAutoDelete(False)

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        try:
            if self.cancelled:
                return
            result = self.fn(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                for item in result:
                    if self.cancelled:
                        result.close()
                        break
                    self.signals.progress.emit(item)
                result = None
            if not self.cancelled:
                self.signals.finished.emit(_Box(result))
        except Exception as exc:  # noqa: BLE001 -- every failure must reach the UI as a signal, never kill the thread
            self.signals.errored.emit(exc)
        finally:
            self.signals.ended.emit()


class JobRunner(QObject):
    """A named single-thread pool. One thread: torch already uses the cores, and order stays predictable."""

    busy_changed = Signal(int)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._active: list[Worker] = []
        self._closed = False

    @property
    def active(self) -> int:
        return len(self._active)

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None,
               on_progress: Callable[[Any], None] | None = None, **kwargs: Any) -> Worker:
        w = Worker(fn, *args, **kwargs)
        if on_result is not None:
            w.signals.finished.connect(lambda box, cb=on_result: cb(box.value))
        if on_error is not None:
            w.signals.errored.connect(on_error)
        if on_progress is not None:
            w.signals.progress.connect(on_progress)
        w.signals.ended.connect(lambda w=w: self._done(w))
        self._active.append(w)
        self.busy_changed.emit(len(self._active))
        self.pool.start(w)
        return w

    def _done(self, w: Worker) -> None:
        if self._closed:  # a late queued signal after shutdown: nothing left to tell
            return
        if w in self._active:
            self._active.remove(w)
        self.busy_changed.emit(len(self._active))

    def cancel_all(self) -> None:
        for w in self._active:
            w.cancel()  # queued workers return at once when their turn comes

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel everything and wait; results still queued for the UI thread are ignored afterwards."""
        self.cancel_all()
        ok = self.pool.waitForDone(timeout_ms)
        self._closed = True
        self._active.clear()
        return ok
