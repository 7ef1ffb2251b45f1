"""Runs the app's work off the UI thread and writes the results into the Qt-free state.

Two single-thread runners: ``interactive`` (model load, current photo, what-if, Grad-CAM, sweep) and
``batch`` (folder runs with progress and cancel), so opening one photo never waits behind a folder.
Grad-CAM runs on its own copy of the torch module (its hooks must not see the other runner's forwards).
Results carry a ticket; a result whose ticket is no longer current (the user moved on) is dropped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from dermviewer.qt.convert import image_pyramid
from dermviewer.qt.workers import JobRunner, Worker
from dermviewer.state.app_state import AppState, ExplainTarget
from dermviewer.state.debounce import Debouncer, LatestOnly
from dermviewer.state.jobs import FolderItem, analyze_photo, predict_many, predict_whatif, thumbnail
from dermviewer.state.overlays import gradcam_map
from dermviewer.state.sweep import run_sweep
from dermviewer.state.whatif import WhatIfParams

__all__ = ["Controller"]


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

    def __init__(self, state: AppState, parent: QObject | None = None, debounce_s: float = 0.15) -> None:
        super().__init__(parent)
        self.state = state
        self.interactive = JobRunner("interactive", self)
        self.batch = JobRunner("batch", self)
        for r in (self.interactive, self.batch):
            r.busy_changed.connect(lambda _n: self.busy_changed.emit(self.busy))
        self._case_ticket, self._whatif_ticket, self._cam_ticket = LatestOnly(), LatestOnly(), LatestOnly()
        self._debouncer: Debouncer[WhatIfParams] = Debouncer(debounce_s)
        self._debounce_timer = QTimer(self)
        self._debounce_timer.setSingleShot(True)
        self._debounce_timer.timeout.connect(self._debounce_tick)
        self._pending_batch: list[Path] = []
        self._folder_worker: Worker | None = None
        self._sweep_worker: Worker | None = None
        self.pyramid: list[Any] = []  # QImage levels of the clean photo
        self.whatif_pyramid: list[Any] = []  # ... and of the corrupted one
        self.state.cases.current_changed.connect(lambda _i: self.analyze_current())

    @property
    def busy(self) -> bool:
        return bool(self.interactive.active or self.batch.active)

    def _error(self, exc: BaseException, context: str = "") -> None:
        prefix = f"{context}: " if context else ""
        self.state.message.emit("error", f"{prefix}{exc}")

    # -- model -------------------------------------------------------------------------------------
    def load_model(self, path: str | Path) -> None:
        s = self.state.settings
        self.interactive.submit(self.state.model.load, path, s.device, s.backend,
                                on_result=self._model_ready, on_error=lambda e: self._error(e, "Cannot open model"))

    def _model_ready(self, info: Any) -> None:
        self.state.settings.model_path = info.path
        self.state.model_changed.emit()
        self.model_loaded.emit()
        for c in self.state.cases.cases:  # predictions of another model are stale
            c.prediction, c.error = None, None
        if self._pending_batch:
            paths, self._pending_batch = self._pending_batch, []
            self.run_folder(paths)
        self.analyze_current()

    # -- opening photos ----------------------------------------------------------------------------
    def open_paths(self, paths: list[Path]) -> None:
        missing = [p for p in paths if not Path(p).exists()]
        for p in missing:
            self.state.message.emit("error", f"{p}: no such file or folder")
        new = self.state.open_paths([Path(p) for p in paths if Path(p).exists()])
        if not new:
            return
        first = self.state.cases.index_of(new[0])
        if len(new) > 1:
            self.run_folder(new[1:])
        self.state.cases.set_current(first)

    def run_folder(self, paths: list[Path]) -> None:
        if not self.state.model.ready:
            self._pending_batch.extend(paths)
            return
        self.folder_progress.emit(0, len(paths))
        self._folder_worker = self.batch.submit(
            predict_many, self.state.model, paths, lambda: bool(self._folder_worker and self._folder_worker.cancelled),
            on_progress=self._folder_item, on_result=lambda _r: self.folder_finished.emit(),
            on_error=lambda e: (self._error(e, "Folder run stopped"), self.folder_finished.emit()))

    def cancel_folder(self) -> None:
        if self._folder_worker is not None:
            self._folder_worker.cancel()
            self.state.message.emit("info", "Folder run cancelled; photos not yet analysed are analysed when opened.")
            self.folder_finished.emit()

    def _folder_item(self, item: FolderItem) -> None:
        i = self.state.cases.index_of(item.path)
        if i >= 0:
            case = self.state.cases[i]
            if case.prediction is None:
                case.set_result(item.prediction, item.error)
            if item.thumbnail is not None:
                case.thumbnail = item.thumbnail
            self.state.cases.notify_changed(case)
            if item.error:
                self.state.message.emit("error", item.error)
        self.folder_progress.emit(item.done, item.total)

    def analyze_current(self) -> None:
        case = self.state.cases.current
        if case is None or not self.state.model.ready:
            return
        ticket = self._case_ticket.next()
        self._whatif_ticket.invalidate()
        self._cam_ticket.invalidate()

        def job() -> tuple[Any, list[Any], Any]:
            view = analyze_photo(self.state.model, case.path, case.prediction)
            return view, image_pyramid(view.image), thumbnail(view.image)

        def done(result: tuple[Any, list[Any], Any]) -> None:
            view, levels, thumb = result
            case.set_result(view.prediction)
            case.thumbnail, case.metadata = thumb, view.metadata
            self.state.cases.notify_changed(case)
            if self._case_ticket.is_current(ticket):
                self.pyramid = levels
                self.state.set_view(view)
                self.case_shown.emit()
                if not self.state.whatif_params.is_identity():
                    self.request_whatif(self.state.whatif_params, immediate=True)

        def failed(exc: BaseException) -> None:
            case.set_result(None, exc if str(exc) else f"{case.path}: {exc.__class__.__name__}")
            self.state.cases.notify_changed(case)
            if self._case_ticket.is_current(ticket):
                self.pyramid = []
                self.state.set_view(None)
            self._error(exc)

        self.interactive.submit(job, on_result=done, on_error=failed)

    # -- what-if -----------------------------------------------------------------------------------
    def request_whatif(self, params: WhatIfParams, immediate: bool = False) -> None:
        self.state.whatif_params = params
        if params.is_identity() or self.state.view is None:
            self._whatif_ticket.invalidate()
            self._debouncer.pop_due(float("inf"))
            had_whatif = self.state.whatif is not None
            self.state.set_whatif(None)
            target = self.state.explain_target
            if had_whatif and target is not None:  # the Grad-CAM shown was of the corrupted photo
                self.request_gradcam(target.head, target.index)
            return
        self._debouncer.push(params, time.monotonic())
        if immediate:
            self._debouncer.pop_due(float("inf"))
            self._start_whatif(params)
        else:
            self._debounce_timer.start(max(1, round(self._debouncer.time_left(time.monotonic()) * 1000)))

    def _debounce_tick(self) -> None:
        now = time.monotonic()
        params = self._debouncer.pop_due(now)
        if params is not None:
            self._start_whatif(params)
        elif self._debouncer.pending:
            self._debounce_timer.start(max(1, round(self._debouncer.time_left(now) * 1000)))

    def _start_whatif(self, params: WhatIfParams) -> None:
        view = self.state.view
        if view is None:
            return
        ticket = self._whatif_ticket.next()

        def job() -> tuple[Any, list[Any]]:
            w = predict_whatif(self.state.model, view.image, params)
            return w, image_pyramid(w.image)

        def done(result: tuple[Any, list[Any]]) -> None:
            if self._whatif_ticket.is_current(ticket) and self.state.view is view:
                self.whatif_pyramid = result[1]
                self.state.set_whatif(result[0])
                self.whatif_shown.emit()
                if self.state.explain_target is not None:
                    self.request_gradcam(self.state.explain_target.head, self.state.explain_target.index)

        self.interactive.submit(job, on_result=done, on_error=lambda e: self._error(e, "What-if failed"))

    # -- Grad-CAM ----------------------------------------------------------------------------------
    def request_gradcam(self, head: str, index: int) -> None:
        image = self.state.displayed_image()
        if image is None:
            return
        ticket = self._cam_ticket.next()
        bundle = self.state.model.predictor.bundle
        target = ExplainTarget(head, index, bundle.taxonomy.head(head).classes[index].name)

        def job() -> Any:
            return gradcam_map(self.state.model.explain_model(), bundle, image, head, index)

        def done(layer: Any) -> None:
            if self._cam_ticket.is_current(ticket):
                self.state.set_gradcam(layer, target)
                self.gradcam_shown.emit()

        self.interactive.submit(job, on_result=done, on_error=lambda e: self._error(e, "Grad-CAM failed"))

    # -- sweep -------------------------------------------------------------------------------------
    def run_sweep(self) -> None:
        view = self.state.view
        if view is None:
            self.state.message.emit("warning", "Open a photo before running a sweep.")
            return

        def cancelled() -> bool:
            return bool(self._sweep_worker and self._sweep_worker.cancelled)

        self._sweep_worker = self.interactive.submit(
            run_sweep, self.state.model.predictor, view.image, 0, cancelled,
            on_progress=self.sweep_progress.emit, on_result=lambda _r: self.sweep_finished.emit(),
            on_error=lambda e: (self._error(e, "Sweep failed"), self.sweep_finished.emit()))

    def cancel_sweep(self) -> None:
        if self._sweep_worker is not None:
            self._sweep_worker.cancel()
            self.sweep_finished.emit()

    def shutdown(self) -> None:
        self._debounce_timer.stop()
        self.interactive.shutdown()
        self.batch.shutdown()
