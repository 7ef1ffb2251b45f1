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

The thread budget (one owner per machine resource) lives here too: :class:`ThreadBudget` decides how
many threads torch, ONNX Runtime and OpenCV may use and how many jobs may compute at once, for the whole
app, so two lanes never each drive every core; :class:`ComputeSlots` hands the compute slots out by
priority (interactive first, then explanations, then batch), between the items of long jobs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

__all__ = ["ComputeSlots", "Executor", "Job", "JobHandle", "Lane", "ManualExecutor", "ManualTimer", "ThreadBudget",
           "Timer", "available_cores", "run_job"]

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
    """Cores this process may use: its CPU affinity, capped by ``OMP_NUM_THREADS`` when the environment
    sets one (CI and shared machines do; the app must not quietly raise what they asked for)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "").strip()
    if cap.isdigit() and int(cap) > 0:
        n = min(n, int(cap))
    return max(1, n)


@dataclass(frozen=True)
class ThreadBudget:
    """How many threads each library may use, and how many jobs may compute at once, for the whole app.

    Lanes that each drive torch's intra-op pool at the full core count fight for the cores and spin: on
    a 2-core machine one 27 ms prediction took 2.3 s with two runners competing. torch's pool is
    process-wide (``set_num_threads`` in one thread changes it for all), so lanes cannot get different
    counts. Instead each forward gets ``torch_threads`` and at most ``slots`` jobs compute at once
    (:class:`ComputeSlots`), with ``torch_threads * slots <= cores``: on up to 4 cores one job at a time
    on every core (a small model gains little from sharing 2 cores two ways, and the user's photo then
    runs at full speed), on more cores two jobs on half the cores each.
    """

    cores: int
    torch_threads: int
    ort_threads: int
    cv2_threads: int
    slots: int

    @classmethod
    def for_machine(cls, cores: int | None = None) -> ThreadBudget:
        n = cores if cores is not None else available_cores()
        per_job = n if n <= 4 else n // 2
        return cls(cores=n, torch_threads=per_job, ort_threads=per_job, cv2_threads=per_job, slots=n // per_job)

    def apply(self) -> None:
        """Set torch's and OpenCV's pools (process-wide; call once, on the UI thread, before any model runs).

        ONNX Runtime has no process-wide setting: each session is built with ``ort_threads``
        (``ModelHost.ort_threads``, set by the coordinator). torch is set only if it is already imported:
        the ONNX Runtime path starts without it, and whoever imports it later applies ``torch_threads``
        (``ModelHost.load_explainer``)."""
        import sys

        import cv2

        set_threads = getattr(sys.modules.get("torch"), "set_num_threads", None)
        if set_threads is not None:  # None too while another thread is still importing torch: it applies them
            set_threads(self.torch_threads)
        cv2.setNumThreads(self.cv2_threads)


class ComputeSlots:
    """At most ``slots`` jobs compute at once; a free slot goes to the highest-priority lane waiting.

    The Qt executor holds a slot around a plain job and around each step of a generator job (never
    across a ``yield``), so a folder run gives way to the user's photo between two of its photos:
    interactive work waits for at most one batch step, then runs alone on its threads. Thread-safe.
    ``peak`` records the most slots ever held at once (tests check it never exceeds ``slots``).
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._held: dict[Lane, int] = dict.fromkeys(Lane, 0)
        self._waiting: dict[Lane, int] = dict.fromkeys(Lane, 0)
        self.peak = 0

    @property
    def held(self) -> dict[Lane, int]:
        with self._cond:
            return dict(self._held)

    def acquire(self, lane: Lane, aborted: Callable[[], bool] = lambda: False) -> bool:
        """Block until a slot is free and no higher lane is waiting for one; False if ``aborted()`` first."""
        with self._cond:
            self._waiting[lane] += 1
            try:
                while True:
                    if aborted():
                        return False
                    higher = any(self._waiting[o] for o in Lane if o < lane)
                    if sum(self._held.values()) < self.slots and not higher:
                        self._held[lane] += 1
                        self.peak = max(self.peak, sum(self._held.values()))
                        return True
                    self._cond.wait(0.05)  # also re-checks ``aborted``
            finally:
                self._waiting[lane] -= 1
                self._cond.notify_all()

    def release(self, lane: Lane) -> None:
        with self._cond:
            self._held[lane] -= 1
            self._cond.notify_all()

    @contextmanager
    def hold(self, lane: Lane, aborted: Callable[[], bool] = lambda: False) -> Iterator[bool]:
        ok = self.acquire(lane, aborted)
        try:
            yield ok
        finally:
            if ok:
                self.release(lane)


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
