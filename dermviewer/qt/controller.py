"""Wires the Qt-free :class:`~dermviewer.state.coordinator.Coordinator` to Qt: a :class:`QtExecutor` runs its
jobs on worker threads (one per lane) and delivers results on the UI thread, a QTimer debounces the
what-if sliders, image pyramids for drawing are built inside the jobs, and the coordinator's events are
re-emitted as Qt signals for widgets and tests. Every decision (tickets, stale results, re-queues,
cancelling) is the coordinator's. The clinical context beside the photo is a
:class:`~dermviewer.state.context.ContextReview` on the same coordinator, with its own debounce QTimer.

The thread budget is set here, once per process, before any model runs: see
:class:`~dermviewer.state.executor.ThreadBudget`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from dermviewer.qt.convert import image_pyramid
from dermviewer.qt.workers import QtExecutor
from dermviewer.state.app_state import AppState
from dermviewer.state.context import ContextReview
from dermviewer.state.coordinator import Coordinator
from dermviewer.state.executor import ComputeSlots, ThreadBudget
from dermviewer.state.whatif import WhatIfParams

__all__ = ["Controller", "QtTimer"]


class QtTimer:
    """The coordinator's debounce :class:`~dermviewer.state.executor.Timer` as a single-shot QTimer."""

    def __init__(self, parent: QObject) -> None:
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._callback: Callable[[], None] | None = None
        self._timer.timeout.connect(self._fire)

    def _fire(self) -> None:
        if self._callback is not None:
            self._callback()

    def start(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._timer.start(max(1, round(delay_s * 1000)))

    def stop(self) -> None:
        self._timer.stop()


class Controller(QObject):
    model_loaded = Signal()
    case_shown = Signal()  # the current photo's prediction and overlays are on screen
    whatif_shown = Signal()
    gradcam_shown = Signal()
    folder_progress = Signal(int, int)  # done, total
    folder_finished = Signal()
    sweep_progress = Signal(object)  # (done, total, SweepResult)
    sweep_finished = Signal()
    busy_changed = Signal(bool)

    def __init__(self, state: AppState, parent: QObject | None = None, debounce_s: float = 0.15,
                 budget: ThreadBudget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.budget = budget or ThreadBudget.for_machine()
        self.budget.apply()
        self.executor = QtExecutor(self, ComputeSlots(self.budget.slots))
        self.coordinator = c = Coordinator(state, self.executor, timer=QtTimer(self), prepare_image=image_pyramid,
                                           budget=self.budget, debounce_s=debounce_s)
        c.model_loaded.connect(lambda _info: self.model_loaded.emit())
        c.case_shown.connect(lambda _view: self.case_shown.emit())
        c.whatif_shown.connect(lambda _w: self.whatif_shown.emit())
        c.gradcam_shown.connect(lambda _layer: self.gradcam_shown.emit())
        c.folder_progress.connect(self.folder_progress.emit)
        c.folder_finished.connect(self.folder_finished.emit)
        c.sweep_progress.connect(lambda done, total, result: self.sweep_progress.emit((done, total, result)))
        c.sweep_finished.connect(self.sweep_finished.emit)
        c.busy_changed.connect(self.busy_changed.emit)
        self.context = ContextReview(c, timer=QtTimer(self))  # the clinical context beside the photo

    # -- what the window draws ----------------------------------------------------------------------
    @property
    def pyramid(self) -> list[Any]:
        """QImage levels of the clean photo on screen."""
        return self.coordinator.prepared or []

    @property
    def whatif_pyramid(self) -> list[Any]:
        """... and of the corrupted one."""
        return self.coordinator.prepared_whatif or []

    @property
    def busy(self) -> bool:
        return self.coordinator.busy

    # -- user actions, passed on ------------------------------------------------------------------
    def load_model(self, path: str | Path) -> None:
        self.coordinator.load_model(path)

    def open_paths(self, paths: list[Path]) -> None:
        self.coordinator.open_paths(paths)

    def run_folder(self, paths: list[Path]) -> None:
        self.coordinator.run_folder(paths)

    def cancel_folder(self) -> None:
        self.coordinator.cancel_folder()

    def analyze_current(self) -> None:
        self.coordinator.analyze_current()

    def request_whatif(self, params: WhatIfParams, immediate: bool = False) -> None:
        self.coordinator.request_whatif(params, immediate)

    def choose_lesion(self, index: int | None) -> None:
        self.coordinator.choose_lesion(index)

    def request_gradcam(self, head: str, index: int) -> None:
        self.coordinator.request_gradcam(head, index)

    def run_sweep(self) -> None:
        self.coordinator.run_sweep()

    def cancel_sweep(self) -> None:
        self.coordinator.cancel_sweep()

    def shutdown(self) -> None:
        self.context.shutdown()
        self.coordinator.shutdown()
