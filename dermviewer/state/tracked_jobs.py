"""The coordinator's hold on the executor: which jobs are in flight (``busy``), which model generation each
ran under (a result computed with a model since replaced is never delivered), and cancelling.

Shared by every mode: the review :class:`~dermviewer.state.coordinator.Coordinator` owns one, and a research
or annotate mode runs its jobs through the same one (``coordinator.jobs``) so "busy", cancelling and the
thread budget cover all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dermviewer.state.events import Signal
from dermviewer.state.executor import ErrorCallback, Executor, Job, JobHandle, Lane, ProgressCallback, ResultCallback

__all__ = ["TrackedJobs"]


class TrackedJobs:
    """``busy_changed(busy)`` fires when the first job starts and when the last one ends or is cancelled."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.generation = 0  # bumped by the coordinator when a new model is in place
        self.busy_changed = Signal()
        self._outstanding: list[JobHandle] = []
        self._busy = False

    @property
    def busy(self) -> bool:
        return bool(self._outstanding)

    def new_generation(self) -> None:
        """Everything submitted so far is stale: its callbacks will not be called."""
        self.generation += 1

    def run(self, job: Job, lane: Lane = Lane.INTERACTIVE, on_result: ResultCallback | None = None,
            on_error: ErrorCallback | None = None, on_progress: ProgressCallback | None = None,
            stale_with_model: bool = True) -> JobHandle:
        """Submit ``job``; its callbacks are dropped once :meth:`new_generation` was called after it, unless
        ``stale_with_model`` is False (loading a model is not made stale by another model)."""
        gen = self.generation
        box: list[JobHandle] = []

        def fresh() -> bool:
            return not stale_with_model or gen == self.generation

        def finish(cb: Callable[[Any], None] | None) -> Callable[[Any], None]:
            def call(value: Any) -> None:
                if box:
                    self._forget(box[0])
                if cb is not None and fresh():
                    cb(value)
            return call

        def progress(item: Any) -> None:
            if on_progress is not None and fresh():
                on_progress(item)

        handle = self.executor.submit(job, finish(on_result), finish(on_error), progress, lane=lane)
        box.append(handle)
        if not (handle.finished or handle.cancelled):
            self._outstanding.append(handle)
            self._refresh_busy()
        return handle

    def cancel(self, handle: JobHandle | None) -> None:
        if handle is not None:
            handle.cancel()
            self._forget(handle)

    def shutdown(self) -> None:
        for h in list(self._outstanding):
            self.cancel(h)
        self.executor.shutdown()

    def _forget(self, handle: JobHandle) -> None:
        if handle in self._outstanding:
            self._outstanding.remove(handle)
        self._refresh_busy()

    def _refresh_busy(self) -> None:
        if self.busy != self._busy:
            self._busy = self.busy
            self.busy_changed.emit(self._busy)
