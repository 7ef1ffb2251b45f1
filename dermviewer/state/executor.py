"""How the coordinator's jobs run: lanes with priorities, an injected executor, and the thread budget.

The coordinator (``dermviewer.state.coordinator``) never starts a thread. It hands each job to an
:class:`Executor` with the lane it belongs to and gets a :class:`JobHandle` back to cancel it. The Qt
layer supplies an executor that runs jobs on worker threads and calls back on the UI thread; tests use
:class:`ManualExecutor`, which queues jobs and runs them, in lane-priority order, only when told to --
so "a result arrives after the user moved on" is a line in a test, not a race.

A job is a callable taking no arguments. A plain function's return value goes to ``on_result``. A
generator function reports each yielded item to ``on_progress`` and is cancelled between items; its
``return`` value goes to ``on_result``. Any ``Exception`` goes to ``on_error``. After ``cancel()`` no
callback of that job is called again (a cancelled job simply goes quiet).

The thread budget (napari and torch alike: one owner per machine resource) lives here too:
:class:`ThreadBudget` decides how many threads torch, ONNX Runtime and OpenCV may use, once for the
whole app, so two lanes never each drive every core; :class:`LaneGate` lets lower lanes' generator jobs
wait between items while higher-priority work runs (interactive first, then explanations, then batch).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

__all__ = ["Executor", "Job", "JobHandle", "Lane", "LaneGate", "ManualExecutor", "ManualTimer", "ThreadBudget", "Timer",
           "available_cores", "run_job"]

Job = Callable[[], Any]
ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[Exception], None]
ProgressCallback = Callable[[Any], None]


class Lane(IntEnum):
    """Where a job runs; a lower value has priority. Each lane runs one job at a time, in order."""

    INTERACTIVE = 0  # model load, the current photo, what-if: the user is waiting for these
    EXPLAIN = 1  # Grad-CAM, severity sweeps: asked for, but may take a moment
    BATCH = 2  # folder runs, dataset evaluation: background, yields to the others


class JobHandle(Protocol):
    def cancel(self) -> None: ...

    @property
    def cancelled(self) -> bool: ...

    @property
    def finished(self) -> bool: ...


class Executor(Protocol):
    def submit(self, job: Job, on_result: ResultCallback | None = None, on_error: ErrorCallback | None = None,
               on_progress: ProgressCallback | None = None, lane: Lane = Lane.INTERACTIVE) -> JobHandle: ...

    def shutdown(self) -> None: ...


def run_job(job: Job, handle: JobHandle, on_result: ResultCallback | None, on_error: ErrorCallback | None,
            on_progress: ProgressCallback | None) -> None:
    """Run ``job`` to the end on the calling thread, honouring ``handle.cancelled`` between progress items."""
    try:
        out = job()
        if isinstance(out, Generator):  # progress items, then its return value
            gen = out
            try:
                while True:
                    if handle.cancelled:
                        gen.close()
                        return
                    item = next(gen)
                    if on_progress is not None and not handle.cancelled:
                        on_progress(item)
            except StopIteration as stop:
                out = stop.value
        if on_result is not None and not handle.cancelled:
            on_result(out)
    except Exception as exc:  # noqa: BLE001 -- every failure must reach the coordinator, never vanish
        if on_error is not None and not handle.cancelled:
            on_error(exc)


@dataclass
class _ManualHandle:
    job: Job
    lane: Lane
    on_result: ResultCallback | None
    on_error: ErrorCallback | None
    on_progress: ProgressCallback | None
    _cancelled: bool = False
    _finished: bool = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def finished(self) -> bool:
        return self._finished


class ManualExecutor:
    """Runs jobs on the calling thread when :meth:`run_pending` (or :meth:`run_next`) is called.

    Jobs run highest-priority lane first, in submission order within a lane: the same order the app's
    lanes give interactive work. Jobs submitted while running (Grad-CAM re-requested after a what-if)
    join the queue and run in the same :meth:`run_pending` call.
    """

    def __init__(self) -> None:
        self.queue: list[_ManualHandle] = []
        self.submitted: list[tuple[Lane, Job]] = []
        self.closed = False

    def submit(self, job: Job, on_result: ResultCallback | None = None, on_error: ErrorCallback | None = None,
               on_progress: ProgressCallback | None = None, lane: Lane = Lane.INTERACTIVE) -> _ManualHandle:
        h = _ManualHandle(job, lane, on_result, on_error, on_progress)
        self.submitted.append((lane, job))
        if self.closed:
            h.cancel()
        else:
            self.queue.append(h)
        return h

    def pending(self, lane: Lane | None = None) -> list[_ManualHandle]:
        return [h for h in self.queue if not h.cancelled and (lane is None or h.lane is lane)]

    def run_next(self, lane: Lane | None = None) -> bool:
        """Run the first queued job (of ``lane``, if given); False when there was none."""
        live = self.pending(lane)
        self.queue = [h for h in self.queue if not h.cancelled]
        if not live:
            return False
        h = min(live, key=lambda x: x.lane)
        self.queue.remove(h)
        run_job(h.job, h, h.on_result, h.on_error, h.on_progress)
        h._finished = True
        return True

    def run_pending(self, lane: Lane | None = None, limit: int = 10_000) -> int:
        n = 0
        while n < limit and self.run_next(lane):
            n += 1
        return n

    def shutdown(self) -> None:
        self.closed = True
        for h in self.queue:
            h.cancel()
        self.queue.clear()


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadBudget:
    """How many threads each library may use, for the whole app.

    Two lanes can run model forwards at once (interactive and batch, or interactive and Grad-CAM). If each
    drives torch's intra-op pool at the full core count, their OpenMP teams fight for the cores and spin:
    on a 2-core machine one 27 ms prediction took 2.3 s. So the intra-op pools get ``cores // 2`` threads
    (at least one) and the lower lanes wait between items while interactive work runs (:class:`LaneGate`).
    """

    cores: int
    torch_threads: int
    ort_threads: int
    cv2_threads: int

    @classmethod
    def for_machine(cls, cores: int | None = None) -> ThreadBudget:
        n = cores if cores is not None else available_cores()
        per_lane = max(1, n // 2)
        return cls(cores=n, torch_threads=per_lane, ort_threads=per_lane, cv2_threads=per_lane)

    def apply(self) -> None:
        """Set torch's and OpenCV's pools (process-wide; call once, on the UI thread, before any model runs).

        ONNX Runtime has no process-wide setting: each session is built with ``ort_threads``
        (``ModelHost(threads=...)``)."""
        import cv2
        import torch

        torch.set_num_threads(self.torch_threads)
        cv2.setNumThreads(self.cv2_threads)


class LaneGate:
    """Lower lanes yield to higher ones: a lane's generator job waits between items while any job of a
    higher-priority lane is running. Thread-safe; the Qt executor calls :meth:`enter`/:meth:`leave` around
    each job and :meth:`wait_turn` between a generator's items. The wait is bounded (``max_wait_s``) so a
    stream of interactive work slows a folder run down but never stalls it."""

    def __init__(self, max_wait_s: float = 2.0) -> None:
        self._cond = threading.Condition()
        self._running: dict[Lane, int] = dict.fromkeys(Lane, 0)
        self.max_wait_s = max_wait_s

    def enter(self, lane: Lane) -> None:
        with self._cond:
            self._running[lane] += 1

    def leave(self, lane: Lane) -> None:
        with self._cond:
            self._running[lane] -= 1
            self._cond.notify_all()

    def busier_than(self, lane: Lane) -> bool:
        with self._cond:
            return any(n for other, n in self._running.items() if other < lane)

    def wait_turn(self, lane: Lane, aborted: Callable[[], bool] = lambda: False) -> float:
        """Block while a higher lane runs (at most ``max_wait_s``, polling ``aborted``); returns seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + self.max_wait_s
        with self._cond:
            while not aborted() and any(n for other, n in self._running.items() if other < lane):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
        return time.monotonic() - t0


class Timer(Protocol):
    """A restartable one-shot timer: the what-if debounce's clock (a QTimer in the app)."""

    def start(self, delay_s: float, callback: Callable[[], None]) -> None: ...

    def stop(self) -> None: ...


class ManualTimer:
    """A :class:`Timer` that fires only when the test says so."""

    def __init__(self) -> None:
        self.delay_s: float | None = None
        self._callback: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return self._callback is not None

    def start(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.delay_s, self._callback = delay_s, callback

    def stop(self) -> None:
        self.delay_s, self._callback = None, None

    def fire(self) -> None:
        cb, self._callback, self.delay_s = self._callback, None, None
        if cb is not None:
            cb()
