"""The Qt executor: the coordinator's jobs on worker threads, their callbacks on the UI thread.

Each job becomes a superqt ``GeneratorWorker`` (``create_worker``): yielded items arrive as ``yielded``,
the return value as ``returned``, any exception as ``errored``, and ``quit()`` aborts between items.
Each :class:`~dermviewer.state.executor.Lane` is a one-thread ``QThreadPool``, so each lane keeps its own
queue in order, and the lanes share the budget's compute slots
(:class:`~dermviewer.state.executor.ComputeSlots`): a job holds one while it computes -- a generator job
only for each step, never across a ``yield`` -- and a free slot goes to the highest lane waiting. Thread
counts inside each job are the app's :class:`~dermviewer.state.executor.ThreadBudget`, set once by the
controller.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import GeneratorWorker, create_worker

from dermviewer.state.executor import ComputeSlots, ErrorCallback, Job, Lane, ProgressCallback, ResultCallback

__all__ = ["QtExecutor", "QtJobHandle"]


class _LaneWorker(GeneratorWorker):
    """superqt's generator worker minus its warnings capture.

    ``WorkerBase.run`` wraps the job in ``warnings.catch_warnings()``, which swaps process-wide state
    (``warnings.filters``, ``warnings.showwarning``). Lanes run side by side, and two workers that end in
    the order they started restore that state crosswise: afterwards every warning in the process went to a
    finished worker's signal, i.e. nowhere. Jobs' warnings therefore take the ordinary route here.
    Everything else -- ``yielded``, ``returned``, ``errored``, ``quit()`` between items -- is superqt's.
    """

    def run(self) -> None:
        self.started.emit()
        self._running = True
        try:
            result = self.work()
            if isinstance(result, Exception):
                raise result
            if not self.abort_requested:
                self.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 -- superqt's contract: every failure becomes ``errored``
            self.errored.emit(exc)
        self._running = False
        self.finished.emit()


class _Box:
    """Values cross threads boxed: PySide6 mis-counts references to ``None`` sent through
    ``Signal(object)`` across threads (a crash after enough ``None`` results), so nothing is sent bare."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _JobFailed(Exception):
    """Carries a job's exception through superqt, which treats a ``RuntimeError`` escaping the generator
    as "the worker was deleted" and ends without ``errored`` or ``finished`` (torch raises RuntimeError)."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class QtJobHandle:
    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.worker: GeneratorWorker | None = None
        self.generator: Iterator[Any] | None = None  # the job's own generator, closed once the worker ends
        self._cancelled = False
        self._finished = False

    def cancel(self) -> None:
        self._cancelled = True
        if self.worker is not None:
            self.worker.quit()  # superqt stops asking the generator for items

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def finished(self) -> bool:
        return self._finished


class _JobRelay(QObject):
    """One job's callbacks on the UI thread, as slots of an object that lives there; gone once it ended."""

    def __init__(self, executor: QtExecutor, handle: QtJobHandle, on_result: ResultCallback | None,
                 on_error: ErrorCallback | None, on_progress: ProgressCallback | None) -> None:
        super().__init__(executor)
        self.executor, self.handle = executor, handle
        self.on_result, self.on_error, self.on_progress = on_result, on_error, on_progress

    def _live(self) -> bool:
        return not (self.executor._closed or self.handle.cancelled)

    @Slot(object)
    def yielded(self, box: _Box) -> None:
        if self.on_progress is not None and self._live():
            self.on_progress(box.value)

    @Slot(object)
    def returned(self, box: _Box | None) -> None:
        if self.on_result is not None and box is not None and self._live():
            self.on_result(box.value)

    @Slot(object)
    def errored(self, exc: Exception) -> None:
        if self.on_error is not None and self._live():
            self.on_error(exc.original if isinstance(exc, _JobFailed) else exc)

    @Slot()
    def finished(self) -> None:  # the worker's last signal: nothing else is queued for this relay
        self.executor._ended(self.handle)
        self.on_result = self.on_error = self.on_progress = None
        self.deleteLater()


_LIVE: set[QtExecutor] = set()  # strong: a parented executor's wrapper may otherwise go while its lanes run


@atexit.register
def _shutdown_live_executors() -> None:
    """At interpreter exit, stop and join every executor nobody shut down (a panel built on its own, say).

    Python ends threads that still run Python code at finalisation by unwinding them through C++ frames;
    one inside torch then aborts the process ("terminate called without an active exception", status 134:
    gdb caught the explainer's daemon thread doing it after a test run that had passed, see
    ``ModelHost.explainer_job``). Lanes are Qt threads Python does not join, so they are joined here."""
    for executor in list(_LIVE):
        with contextlib.suppress(RuntimeError):  # its Qt object is gone: its pools waited for their threads
            executor.shutdown(timeout_ms=60_000)


class QtExecutor(QObject):
    """One single-thread pool per lane; ``busy_changed(n)`` counts jobs submitted and not yet ended."""

    busy_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, slots: ComputeSlots | None = None) -> None:
        super().__init__(parent)
        self.slots = slots or ComputeSlots(1)
        self.pools: dict[Lane, QThreadPool] = {}
        for lane in Lane:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(1)
            pool.setObjectName(f"lane_{lane.name.lower()}")
            self.pools[lane] = pool
        _LIVE.add(self)
        self._active: list[QtJobHandle] = []
        # The worker that ended last on each lane: released only when the next one on that lane ends (or
        # at shutdown), i.e. once its thread has certainly left run(), so it is freed here, on the UI thread.
        self._retired: dict[Lane, GeneratorWorker] = {}
        self._closed = False

    @property
    def active(self) -> int:
        return len(self._active)

    def submit(self, job: Job, on_result: ResultCallback | None = None, on_error: ErrorCallback | None = None,
               on_progress: ProgressCallback | None = None, lane: Lane = Lane.INTERACTIVE) -> QtJobHandle:
        handle = QtJobHandle(lane)
        if self._closed:
            handle.cancel()
            handle._finished = True
            return handle
        slots = self.slots

        def cancelled() -> bool:
            return handle.cancelled

        def work() -> Iterator[_Box]:  # runs on the lane's thread
            try:
                with slots.hold(lane, cancelled) as ok:
                    if not ok:
                        return _Box(None)  # cancelled while waiting: nothing is delivered
                    out = job()
                    if not inspect.isgenerator(out):
                        return _Box(out)
                handle.generator = out
                while True:
                    with slots.hold(lane, cancelled) as ok:
                        if not ok:
                            return _Box(None)
                        try:
                            item = next(out)
                        except StopIteration as stop:
                            return _Box(stop.value)
                    yield _Box(item)  # outside the slot: an aborted worker must not keep one
            except Exception as exc:
                raise _JobFailed(exc) from exc

        worker = create_worker(work, _start_thread=False, _ignore_errors=True, _worker_class=_LaneWorker)
        # Python owns the worker, not the pool: an auto-deleted QRunnable is destroyed on the lane's thread,
        # and with it the worker's signal object (a UI-thread QObject) and the slots of its queued signals.
        worker.setAutoDelete(False)
        handle.worker = worker

        # The worker's signals are emitted on the lane's thread: they go to slots of a QObject living on
        # this one (queued), never to lambdas. PySide6 >= 6.8 mishandles a cross-thread signal connected to
        # a plain callable (PYSIDE-3124); the suite segfaulted in wrapper teardown while a lane emitted.
        relay = _JobRelay(self, handle, on_result, on_error, on_progress)
        worker.yielded.connect(relay.yielded)
        worker.returned.connect(relay.returned)
        worker.errored.connect(relay.errored)
        worker.finished.connect(relay.finished)
        self._active.append(handle)
        self.busy_changed.emit(len(self._active))
        self.pools[lane].start(worker)
        return handle

    def _ended(self, handle: QtJobHandle) -> None:
        handle._finished = True
        gen, worker, handle.generator, handle.worker = handle.generator, handle.worker, None, None
        if worker is not None:  # the single-thread lane ran this worker after the previous one returned
            self._retired[handle.lane] = worker
        if gen is not None and hasattr(gen, "close"):
            gen.close()  # an aborted job's generator is suspended mid-way: let its cleanup run now
        if self._closed:  # a late queued signal after shutdown: nothing left to tell
            return
        if handle in self._active:
            self._active.remove(handle)
        self.busy_changed.emit(len(self._active))

    def cancel_all(self) -> None:
        for h in list(self._active):
            h.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything and wait for the lanes; callbacks still queued for the UI thread are ignored."""
        self._closed = True
        self.cancel_all()
        ok = all(pool.waitForDone(timeout_ms) for pool in self.pools.values())
        self._active.clear()
        if ok:  # every run() has returned: the workers can go, and exit has nothing to wait for
            self._retired.clear()
            _LIVE.discard(self)
        return ok
