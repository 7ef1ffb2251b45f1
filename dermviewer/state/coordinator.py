"""The review coordinator: decides which jobs start, which results are stale and what is cancelled when the
photo, the model, the what-if parameters or the explained class change. Qt-free; ``dermviewer.qt`` only
turns clicks into calls here and the events below into pixels.

Rules it enforces (each has a test in ``tests/dermviewer/state/test_coordinator.py``):

- every job carries the ticket of what it was for (:class:`~dermviewer.state.debounce.LatestOnly`) and the
  model generation it ran under; a late result for a photo, what-if, class or model no longer shown is
  dropped;
- a new model clears every case's prediction and status at once, re-queues them as one batch run and
  re-analyses the current photo; folders opened before any model is ready wait in a pending batch;
- a what-if result re-requests the Grad-CAM of the class being explained (on the corrupted photo), and
  resetting the what-if re-requests it on the clean photo;
- a severity sweep is its own cancellable job on the explanation lane, so the next photo never waits
  behind it, and it is cancelled (its remaining steps dropped) when the photo changes;
- torch (for Grad-CAM) is loaded in the background once the first differential of a model is on screen
  (not before: opening the first photo must not share the cores with the import), by
  :meth:`ModelHost.explainer_job` on the explanation lane, so Grad-CAM requests queue behind it while the
  photos the user opens meanwhile are not held up by the import.

API for other modes (research, annotate) that plug into the same coordinator and job runner:

- :meth:`Coordinator.run` ``(job, lane=..., on_result=, on_error=, on_progress=)`` runs any job on the
  shared executor through :attr:`Coordinator.jobs` (:class:`~dermviewer.state.tracked_jobs.TrackedJobs`;
  see :mod:`dermviewer.state.executor` for the job protocol and the lanes: interactive first, then
  explanations, then batch). Results produced under a model that has since been replaced are dropped;
  the returned handle cancels it. :attr:`Coordinator.busy` covers these jobs too. A research
  evaluation, for instance: ``co.run(lambda: run_evaluation(...), Lane.BATCH, on_result=show,
  on_progress=bar)`` -- its generator is stopped between yields on ``handle.cancel()``, so the
  ``cancelled`` argument such generators take can stay at its default.
- Events (:class:`~dermviewer.state.events.Signal`): ``model_loaded(info)``, ``case_shown(view)``,
  ``whatif_shown(whatif)``, ``gradcam_shown(layer)``, ``folder_progress(done, total)``,
  ``folder_finished()``, ``sweep_progress(done, total, result)``, ``sweep_finished()``,
  ``busy_changed(busy)``. A mode re-runs its own work on ``model_loaded``.
- ``prepare_image`` (optional) runs inside the job on each photo about to be shown, so the drawing layer
  can get its image pyramid built off the UI thread; the result is :attr:`prepared` /
  :attr:`prepared_whatif`, opaque here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dermviewer.state.app_state import AppState, ExplainTarget
from dermviewer.state.cases import CaseStatus
from dermviewer.state.debounce import Debouncer, LatestOnly
from dermviewer.state.events import Signal
from dermviewer.state.executor import (
    ErrorCallback,
    Executor,
    Job,
    JobHandle,
    Lane,
    ProgressCallback,
    ResultCallback,
    ThreadBudget,
    Timer,
)
from dermviewer.state.jobs import (
    CaseView,
    FolderItem,
    WhatIfView,
    analyze_lesion,
    analyze_photo,
    predict_many,
    predict_whatif,
    thumbnail,
)
from dermviewer.state.model import prefetch_explain_imports
from dermviewer.state.overlays import OverlayLayer, gradcam_map
from dermviewer.state.sweep import SweepResult, run_sweep
from dermviewer.state.tracked_jobs import TrackedJobs
from dermviewer.state.whatif import WhatIfParams

__all__ = ["Coordinator"]

SWEEP_SEED = 0


class Coordinator:
    def __init__(self, state: AppState, executor: Executor, *, timer: Timer | None = None,
                 prepare_image: Callable[[np.ndarray], Any] | None = None, budget: ThreadBudget | None = None,
                 debounce_s: float = 0.15, clock: Callable[[], float] = time.monotonic) -> None:
        """``timer`` debounces what-if requests (None: each request runs at once); ``budget`` gives ONNX
        Runtime sessions their thread count (torch's is process-wide: :meth:`ThreadBudget.apply`)."""
        self.state, self.executor, self.timer = state, executor, timer
        self.prepare_image = prepare_image
        self.clock = clock
        if budget is not None:
            state.model.ort_threads = budget.ort_threads
            state.model.torch_threads = budget.torch_threads
            state.lesions.threads = max(1, budget.ort_threads)  # runs in the same lane as the prediction
        self.model_loaded, self.case_shown = Signal(), Signal()
        self.whatif_shown, self.gradcam_shown = Signal(), Signal()
        self.folder_progress, self.folder_finished = Signal(), Signal()
        self.sweep_progress, self.sweep_finished = Signal(), Signal()
        self.jobs = TrackedJobs(executor)
        self.busy_changed = self.jobs.busy_changed
        self.prepared: Any = None  # prepare_image(clean photo shown)
        self.prepared_whatif: Any = None  # prepare_image(corrupted photo shown)
        self.sweep_result: SweepResult | None = None
        self._case_ticket, self._whatif_ticket, self._cam_ticket = LatestOnly(), LatestOnly(), LatestOnly()
        self._sweep_ticket = LatestOnly()
        self._debouncer: Debouncer[WhatIfParams] = Debouncer(debounce_s)
        self._pending_batch: list[Path] = []
        self._batch_paths: set[Path] = set()  # queued in a folder run, result not in yet
        self._folder_handles: list[JobHandle] = []
        self._sweep_handle: JobHandle | None = None
        self._cam_pending: ExplainTarget | None = None
        self._explainer_handle: JobHandle | None = None
        state.cases.current_changed.connect(lambda _i: self.analyze_current())

    # -- jobs --------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def run(self, job: Job, lane: Lane = Lane.INTERACTIVE, on_result: ResultCallback | None = None,
            on_error: ErrorCallback | None = None, on_progress: ProgressCallback | None = None,
            stale_with_model: bool = True) -> JobHandle:
        """Run ``job`` on the shared executor (:meth:`TrackedJobs.run`): callbacks of a job that outlived
        its model are not called."""
        return self.jobs.run(job, lane, on_result, on_error, on_progress, stale_with_model)

    def _error(self, exc: BaseException, context: str = "") -> None:
        self.state.message.emit("error", f"{context}: {exc}" if context else str(exc))

    # -- model -------------------------------------------------------------------------------------
    def load_model(self, path: str | Path) -> JobHandle:
        s, host = self.state.settings, self.state.model
        device, backend = s.device, s.backend
        return self.run(lambda: host.prepare(path, device, backend), Lane.INTERACTIVE, self._model_ready,
                        lambda e: self._error(e, "Cannot open model"), stale_with_model=False)

    def _model_ready(self, loaded: Any) -> None:
        # adopted here, on the UI thread, together with the new generation: a job queued before this line ran on
        # the old model (and is stale); one queued after runs on the new one
        info = self.state.model.adopt(loaded)
        self.jobs.new_generation()  # everything computed with the previous model is stale from here on
        self.state.settings.model_path = info.path
        cases = self.state.cases
        requeue = [c.path for c in cases.cases if c.status is not CaseStatus.PENDING or c.path in self._batch_paths]
        requeue += self._pending_batch
        self._pending_batch = []
        for h in self._folder_handles:
            self.jobs.cancel(h)
        self._folder_handles.clear()
        self._batch_paths.clear()
        self.cancel_sweep()
        cases.reset_results()
        if self._explainer_handle is not None:
            self.jobs.cancel(self._explainer_handle)
            self._explainer_handle = None
        self.state.model_changed.emit()
        self.state.model.explainer_changed.emit()
        current = cases.current
        if current is not None and self.state.model.predictor.backend_name != "torch":
            # A photo waits for this model (the app was started with one): Grad-CAM's torch-free imports run
            # while ONNX Runtime predicts it. Without a waiting photo they wait for the first differential
            # (load_explainer), so they never slow a photo the user opens right after start-up.
            prefetch_explain_imports()
        paths = [p for p in dict.fromkeys(requeue) if current is None or p != current.path]
        if paths:
            self.run_folder(paths)
        self.analyze_current()
        # Last: a listener that opens a photo here (or re-runs a mode's work) queues it behind the photo shown,
        # and is not undone by the analyze_current above (which would restart its analysis under a new ticket).
        self.model_loaded.emit(info)

    # -- photos ------------------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[Path]) -> None:
        existing = []
        for p in paths:
            if Path(p).exists():
                existing.append(Path(p))
            else:
                self.state.message.emit("error", f"{p}: no such file or folder")
        new = self.state.open_paths(existing)
        if not new:
            return
        first = self.state.cases.index_of(new[0])
        if len(new) > 1:
            self.run_folder(new[1:])
        self.state.cases.set_current(first)

    def run_folder(self, paths: Sequence[Path]) -> None:
        paths = list(paths)
        if not paths:
            return
        if not self.state.model.ready:
            self._pending_batch.extend(paths)
            return
        host, total = self.state.model, len(paths)
        box: list[JobHandle] = []
        self._batch_paths.update(paths)

        def ended(_value: Any = None) -> None:
            if box and box[0] in self._folder_handles:
                self._folder_handles.remove(box[0])
                self.folder_finished.emit()

        def failed(exc: Exception) -> None:
            self._error(exc, "Folder run stopped")
            ended()

        self.folder_progress.emit(0, total)
        handle = self.run(lambda: predict_many(host, paths, lambda: False), Lane.BATCH, ended, failed,
                          self._folder_item)
        box.append(handle)
        if not (handle.finished or handle.cancelled):
            self._folder_handles.append(handle)

    def cancel_folder(self) -> None:
        live = [h for h in self._folder_handles if not h.cancelled]
        self._pending_batch = []
        if not live:
            return
        for h in live:
            self.jobs.cancel(h)
        self._folder_handles.clear()
        self._batch_paths.clear()
        self.state.message.emit("info", "Folder run cancelled; photos not yet analysed are analysed when opened.")
        self.folder_finished.emit()

    def _folder_item(self, item: FolderItem) -> None:
        self._batch_paths.discard(item.path)
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
        """Predict (or reuse a folder run's prediction for) the current photo and show it."""
        self.cancel_sweep()  # a sweep belongs to the photo it was started on
        case = self.state.cases.current
        if case is None or not self.state.model.ready:
            return
        ticket = self._case_ticket.next()
        self._whatif_ticket.invalidate()
        self._cam_ticket.invalidate()
        self._cam_pending = None
        host, prepare, reuse = self.state.model, self.prepare_image, case.prediction
        lesion_host = self.state.lesions

        def job() -> tuple[CaseView, Any, np.ndarray]:
            view = analyze_photo(host, case.path, reuse, lesion_host)
            return view, prepare(view.image) if prepare else None, thumbnail(view.image)

        def done(result: tuple[CaseView, Any, np.ndarray]) -> None:
            view, prepared, thumb = result
            case.set_result(view.prediction)
            case.thumbnail, case.metadata = thumb, view.metadata
            self.state.cases.notify_changed(case)
            if self._case_ticket.is_current(ticket):
                self.cancel_sweep()  # one started on the photo shown until now ends with it
                self.prepared = prepared
                self.state.set_view(view)
                self.case_shown.emit(view)
                self.load_explainer()
                if not self.state.whatif_params.is_identity():
                    self.request_whatif(self.state.whatif_params, immediate=True)

        def failed(exc: Exception) -> None:
            case.set_result(None, str(exc) or f"{case.path}: {exc.__class__.__name__}")
            self.state.cases.notify_changed(case)
            if self._case_ticket.is_current(ticket):
                self.cancel_sweep()
                self.prepared = None
                self.state.set_view(None)
            self._error(exc)

        self.run(job, Lane.INTERACTIVE, done, failed)

    def choose_lesion(self, index: int | None) -> None:
        """Make the differential about found lesion ``index`` (the classifier on the crop around it), or about
        the whole photo again (``None``). A lesion view is a view of its own: overlays, Grad-CAM, what-if and
        sweep follow it; going back shows the whole photo's view as it was."""
        view = self.state.view
        if view is None:
            return
        whole = view.whole or view
        if index is None:
            if view.whole is not None:
                self._show_derived(whole)
            return
        if index == view.lesion_index:
            return
        ticket = self._case_ticket.next()
        self._whatif_ticket.invalidate()
        self._cam_ticket.invalidate()
        host, prepare = self.state.model, self.prepare_image

        def job() -> tuple[CaseView, Any]:
            lesion_view = analyze_lesion(host, whole, index)
            return lesion_view, prepare(lesion_view.image) if prepare else None

        def done(result: tuple[CaseView, Any]) -> None:
            if self._case_ticket.is_current(ticket):
                self._show_derived(*result)

        self.run(job, Lane.INTERACTIVE, done, self._error)

    def _show_derived(self, view: CaseView, prepared: Any = None) -> None:
        self.cancel_sweep()
        self._case_ticket.next()  # a lesion crop still running for the view left behind is not shown
        self.prepared = prepared if prepared is not None or self.prepare_image is None else self.prepare_image(
            view.image)
        self.state.set_view(view)
        self.case_shown.emit(view)
        if not self.state.whatif_params.is_identity():
            self.request_whatif(self.state.whatif_params, immediate=True)

    # -- what-if -----------------------------------------------------------------------------------
    def request_whatif(self, params: WhatIfParams, immediate: bool = False) -> None:
        self.state.whatif_params = params
        if params.is_identity() or self.state.view is None:
            self._whatif_ticket.invalidate()
            self._debouncer.pop_due(float("inf"))
            if self.timer is not None:
                self.timer.stop()
            had_whatif = self.state.whatif is not None
            self.state.set_whatif(None)
            target = self.state.explain_target or self._cam_pending
            if had_whatif and target is not None:  # the Grad-CAM shown was of the corrupted photo
                self.request_gradcam(target.head, target.index)
            return
        if immediate or self.timer is None:
            self._debouncer.pop_due(float("inf"))
            if self.timer is not None:
                self.timer.stop()
            self._start_whatif(params)
            return
        self._debouncer.push(params, self.clock())
        self.timer.start(self._debouncer.time_left(self.clock()), self.flush_whatif)

    def flush_whatif(self) -> None:
        """The debounce timer fired: start the latest what-if if the sliders have been quiet long enough."""
        now = self.clock()
        params = self._debouncer.pop_due(now)
        if params is not None:
            self._start_whatif(params)
        elif self._debouncer.pending and self.timer is not None:
            self.timer.start(self._debouncer.time_left(now), self.flush_whatif)

    def _start_whatif(self, params: WhatIfParams) -> None:
        view = self.state.view
        if view is None:
            return
        ticket = self._whatif_ticket.next()
        host, prepare = self.state.model, self.prepare_image

        def job() -> tuple[WhatIfView, Any]:
            w = predict_whatif(host, view.image, params)
            return w, prepare(w.image) if prepare else None

        def done(result: tuple[WhatIfView, Any]) -> None:
            if not self._whatif_ticket.is_current(ticket) or self.state.view is not view:
                return
            self.prepared_whatif = result[1]
            self.state.set_whatif(result[0])
            self.whatif_shown.emit(result[0])
            target = self.state.explain_target or self._cam_pending
            if target is not None:  # the class being explained, now on the corrupted photo
                self.request_gradcam(target.head, target.index)

        self.run(job, Lane.INTERACTIVE, done, lambda e: self._error(e, "What-if failed"))

    # -- Grad-CAM ----------------------------------------------------------------------------------
    def load_explainer(self) -> None:
        """Load torch and the Grad-CAM module in the background, once per model (see the module docstring)."""
        host = self.state.model
        if not host.can_explain or host.explainer_ready or self._explainer_handle is not None:
            return

        def ended(_result: Any = None) -> None:
            self.state.model.explainer_changed.emit()

        def failed(exc: Exception) -> None:
            self._explainer_handle = None
            host.explainer_error = str(exc) or exc.__class__.__name__  # not retried for this model
            self._error(exc, "Grad-CAM is unavailable")
            ended()

        self._explainer_handle = self.run(host.explainer_job, Lane.EXPLAIN, ended, failed)

    def request_gradcam(self, head: str, index: int) -> None:
        image = self.state.displayed_image()
        if image is None or not self.state.model.ready:
            return
        self.load_explainer()  # a no-op once loaded; the Grad-CAM job below queues behind it on its lane
        ticket = self._cam_ticket.next()
        host = self.state.model
        bundle = host.predictor.bundle
        target = ExplainTarget(head, index, bundle.taxonomy.head(head).classes[index].name)
        self._cam_pending = target

        def job() -> OverlayLayer:
            return gradcam_map(host.explain_model(), bundle, image, head, index)

        def done(layer: OverlayLayer) -> None:
            if not self._cam_ticket.is_current(ticket) or self.state.displayed_image() is not image:
                return
            self._cam_pending = None
            self.state.set_gradcam(layer, target)
            self.gradcam_shown.emit(layer)

        self.run(job, Lane.EXPLAIN, done, lambda e: self._error(e, "Grad-CAM failed"))

    # -- sweep -------------------------------------------------------------------------------------
    def run_sweep(self) -> None:
        view = self.state.view
        if view is None or not self.state.model.ready:
            self.state.message.emit("warning", "Open a photo before running a sweep.")
            return
        self.cancel_sweep()
        ticket = self._sweep_ticket.next()
        predictor = self.state.model.predictor
        self.sweep_result = None

        def live() -> bool:
            return self._sweep_ticket.is_current(ticket) and self.state.view is view

        def progress(item: tuple[int, int, SweepResult]) -> None:
            if live():
                self.sweep_result = item[2]
                self.sweep_progress.emit(*item)

        def ended(_value: Any = None) -> None:
            if live():
                self._sweep_handle = None
                self.sweep_finished.emit()

        def failed(exc: Exception) -> None:
            if live():
                self._error(exc, "Sweep failed")
            ended()

        self._sweep_handle = self.run(lambda: run_sweep(predictor, view.image, SWEEP_SEED), Lane.EXPLAIN, ended,
                                      failed, progress)

    def cancel_sweep(self) -> None:
        """Stop the running sweep, if any; its remaining steps are never delivered."""
        handle, self._sweep_handle = self._sweep_handle, None
        if handle is None:
            return
        self._sweep_ticket.invalidate()
        self.jobs.cancel(handle)
        self.sweep_result = None
        self.sweep_finished.emit()

    def shutdown(self) -> None:
        if self.timer is not None:
            self.timer.stop()
        self._folder_handles.clear()
        self._sweep_handle = None
        self.jobs.shutdown()
