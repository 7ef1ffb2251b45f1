"""The loaded model's explanation on the annotate canvas (Ctrl+L or the "Model overlay" button): the LSM
attention map and the LSM-selected tokens of the photo shown, computed on the shared job runner (never on the
UI thread), kept per photo, and drawn only over the photo it was computed for.

The same job gives the photo's live prediction, so with the overlay on a photo costs one inference, not two.
What is asked for and drawn is :class:`~dermviewer.state.annotate.model_overlay.ModelOverlay`'s decision; a
mixin of :class:`~dermviewer.qt.annotate.panel.AnnotatePanel`.
"""

from __future__ import annotations

from typing import Any

from dermviewer.state.annotate.model_overlay import ModelOverlay, PhotoExplanation, explain_photo
from dermviewer.state.executor import JobHandle, Lane

__all__ = ["PanelOverlay"]


class PanelOverlay:
    """Needs the panel's ``session``, ``state``, ``jobs``, ``message``, ``canvas`` and ``overlay_button``."""

    session: Any
    state: Any
    jobs: Any
    message: Any
    canvas: Any
    overlay_button: Any
    model_overlay: ModelOverlay
    _overlay_job: tuple[str, JobHandle] | None

    def toggle_overlay(self) -> None:
        on = self.model_overlay.toggle()
        self.overlay_button.setChecked(on)
        model = getattr(self.state, "model", None)
        if on and (model is None or not getattr(model, "ready", False)):
            self.message.emit("info", "The model overlay shows once a model is loaded (Model ▸ Open model…).")
        self.explain_current()

    def forget_explanations(self) -> None:
        """The model changed: nothing it explained may stay drawn, and a pending job is of no use."""
        self.model_overlay.clear()
        self._cancel_overlay_job()
        self.canvas.set_model_overlay(None)

    def _cancel_overlay_job(self, keep: str | None = None) -> None:
        job, self._overlay_job = self._overlay_job, None
        if job is None:
            return
        key, handle = job
        if key == keep and not (handle.finished or handle.cancelled):
            self._overlay_job = job
            return
        if not handle.finished:
            if hasattr(self.jobs, "cancel"):
                self.jobs.cancel(handle)
            else:
                handle.cancel()
            self.model_overlay.failed(key)  # asked again when its photo is shown again

    def _draw_explanation(self, explanation: PhotoExplanation | None) -> None:
        if explanation is None:
            self.canvas.set_model_overlay(None)
            return
        settings = getattr(self.state, "overlays", None)
        self.canvas.set_model_overlay(explanation.layers, explanation.image_size,
                                      getattr(settings, "colormap", "jet"), getattr(settings, "opacity", 0.5))

    def explain_current(self) -> None:
        """Draw the shown photo's explanation if known, else ask the job runner for it (dropping a pending one
        for a photo no longer shown)."""
        s = self.session
        if s is None:
            return
        key, overlay = s.current.key, self.model_overlay
        known = overlay.shown(key)
        self._draw_explanation(known)
        if known is not None and s.needs_live():
            s.set_live(key, known.prediction)
        if not overlay.enabled:
            return
        self._cancel_overlay_job(keep=key)
        model = getattr(self.state, "model", None)
        if not overlay.needs(key) or self.jobs is None or model is None or not getattr(model, "ready", False):
            return
        predictor, path, head = model.predictor, s.current.path, overlay.head
        overlay.ask(key)

        def done(explanation: PhotoExplanation) -> None:
            if self._overlay_job is not None and self._overlay_job[0] == key:
                self._overlay_job = None
            if self.session is not s or self.model_overlay is not overlay:
                return  # another project is open: not its photo
            if key not in s.live and (s.oof is None or s.oof.suggestion(key, "disease") is None):
                s.set_live(key, explanation.prediction)
            if overlay.arrived(explanation, s.current.key):
                self._draw_explanation(explanation)
                if not explanation.layers:
                    self.message.emit("warning", "This model has no Lesion Selection Module: no attention to show.")

        def failed(exc: Exception) -> None:
            overlay.failed(key)
            if self.session is s:
                self.message.emit("warning", f"no model overlay for {key}: {exc}")

        # the user waits for the suggestion too when the photo has no out-of-fold one: then it is interactive
        lane = Lane.INTERACTIVE if s.needs_live() else Lane.EXPLAIN
        handle = self.jobs.run(lambda: explain_photo(predictor, key, path, head), lane, on_result=done,
                               on_error=failed)
        if not (handle.finished or handle.cancelled):
            self._overlay_job = (key, handle)
