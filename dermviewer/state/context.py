"""The clinical context beside the shown photo, and what it changes in the differential (issue 11, item 3).

A dermatologist reads a photo knowing the patient's age, the body site and what the patient reports
(MetaBlock, Pacheco & Krohling, IEEE JBHI 2021). :class:`ContextReview` holds that context for the
current photo -- pre-filled from its dataset manifest row when it has one, empty otherwise -- and,
for a model that takes the context (``Predictor.context_encoding``), predicts the photo again with it.
The photo-only prediction (the coordinator's ``CaseView``) is never re-run: the two differentials are
shown side by side, so the clinician sees what the context changed.

Rules (each has a test in ``tests/dermviewer/state/test_context_state.py``):

- an edit is debounced (spin boxes emit per keystroke) and runs one INTERACTIVE job with the latest
  context; a newer edit cancels the job in flight and its late result is dropped (ticket);
- a new photo drops any pending or running context job; its context is re-filled from its own row;
  the same photo shown again (a new model) keeps the user's edits and is re-predicted with them;
- a value that cannot be read (age "abc", a site the model does not know) is refused with a message
  naming the field; the context stays as it was;
- a photo-only model gets no context job at all (:attr:`ContextReview.available` is False).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dermviewer.state.coordinator import Coordinator
from dermviewer.state.debounce import Debouncer, LatestOnly
from dermviewer.state.events import Signal
from dermviewer.state.executor import JobHandle, Lane, Timer
from dermviewer.state.jobs import predict_with_context
from dermviewer.state.metadata import manifest_row
from engine.context import ATTRIBUTE_FIELDS, CONTEXT_FIELDS, ClinicalContext, ContextEncoding, ContextError, parse_flag
from engine.prediction import Prediction

__all__ = ["FIELD_LABELS", "ContextComparison", "ContextReview", "ContextRow", "compare_context", "parse_field",
           "prefill_context"]

FIELD_LABELS = {"age": "Age", "body_part": "Body site", "itch": "Itches", "grew": "Grew", "hurt": "Hurts",
                "changed": "Changed", "bleed": "Bleeds", "elevation": "Elevated"}


def parse_field(name: str, value: Any, sites: tuple[str, ...] | None = None) -> Any:
    """One field's value from what a widget or a manifest holds; ``ContextError`` names the field.

    ``sites``: the body-site codes the model knows (a site outside them is refused, not silently dropped).
    """
    if name not in CONTEXT_FIELDS:
        raise ContextError(f"{name!r} is not a clinical-context field (one of {', '.join(CONTEXT_FIELDS)})")
    if name in ATTRIBUTE_FIELDS:
        return parse_flag(value, name)
    parsed = getattr(ClinicalContext.from_mapping({name: value}), name)
    if name == "body_part" and parsed is not None and sites is not None and parsed not in sites:
        raise ContextError(f"body_part: {parsed!r} is not a site this model knows ({', '.join(sites)})")
    return parsed


def prefill_context(row: Mapping[str, Any] | None,
                    sites: tuple[str, ...] | None = None) -> tuple[ClinicalContext, list[str]]:
    """The context a manifest row gives, field by field: a bad field is left unknown and reported, the
    rest are kept. Never ``biopsed`` or the diagnosis: only :data:`~engine.context.CONTEXT_FIELDS`."""
    if row is None:
        return ClinicalContext(), []
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in CONTEXT_FIELDS:
        raw = row.get(name, row.get("site")) if name == "body_part" else row.get(name)
        try:
            values[name] = parse_field(name, raw, sites)
        except ContextError as exc:
            problems.append(str(exc))
    return ClinicalContext(**values), problems


@dataclass(frozen=True)
class ContextRow:
    code: str
    name: str
    photo_only: float
    with_context: float
    malignant: bool

    @property
    def delta(self) -> float:
        return self.with_context - self.photo_only


@dataclass(frozen=True)
class ContextComparison:
    """Photo-only vs photo-plus-context differential of one photo, rows in the photo-only ranking."""

    path: Path
    context: ClinicalContext
    prediction: Prediction  # with the context
    rows: list[ContextRow]
    photo_top: str
    context_top: str

    @property
    def used(self) -> tuple[str, ...]:
        return self.prediction.context_used

    @property
    def changed(self) -> bool:
        return self.photo_top != self.context_top

    @property
    def largest(self) -> ContextRow | None:
        return max(self.rows, key=lambda r: abs(r.delta), default=None)

    def rank_with_context(self, code: str) -> int:
        """1 for the most likely class given the context."""
        order = sorted(self.rows, key=lambda r: -r.with_context)
        return 1 + [r.code for r in order].index(code)

    def summary(self) -> str:
        names = {r.code: r.name for r in self.rows}
        if self.changed:
            return f"The context changes the top class: {names[self.photo_top]} → {names[self.context_top]}"
        big = self.largest
        shift = f"; largest shift {big.delta * 100:+.1f} pts ({big.name})" if big is not None else ""
        return f"Top class unchanged ({names[self.photo_top]}){shift}"


def compare_context(path: Path, photo_only: Prediction, with_context: Prediction,
                    context: ClinicalContext) -> ContextComparison:
    by_code = {s.code: s.probability for s in with_context.differential}
    rows = [ContextRow(s.code, s.name, s.probability, by_code.get(s.code, 0.0), s.malignant)
            for s in photo_only.differential]
    return ContextComparison(Path(path), context, with_context, rows, photo_only.top.code, with_context.top.code)


class ContextReview:
    """The current photo's clinical context and its differential, on the coordinator's job runner.

    Events: ``context_changed(context)`` (pre-filled or edited), ``comparison_changed(comparison | None)``,
    ``pending_changed(pending)`` (a context prediction is waiting or running), ``field_rejected(name, text)``.
    """

    def __init__(self, coordinator: Coordinator, timer: Timer | None = None, debounce_s: float = 0.3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.coordinator, self.state, self.timer, self.clock = coordinator, coordinator.state, timer, clock
        self.context = ClinicalContext()
        self.prefilled = ClinicalContext()  # what the manifest row said, for "reset"
        self.path: Path | None = None  # the photo the context belongs to
        self.comparison: ContextComparison | None = None
        self.pending = False
        self.context_changed, self.comparison_changed = Signal(), Signal()
        self.pending_changed, self.field_rejected = Signal(), Signal()
        self._ticket = LatestOnly()
        self._debouncer: Debouncer[ClinicalContext] = Debouncer(debounce_s)
        self._handle: JobHandle | None = None
        self.state.cases.current_changed.connect(lambda _i: self._drop_pending())
        self.state.view_changed.connect(self._view_changed)

    # -- what the model takes ------------------------------------------------------------------------
    @property
    def encoding(self) -> ContextEncoding | None:
        model = self.state.model
        return model.predictor.context_encoding if model.ready else None

    @property
    def available(self) -> bool:
        """Whether the loaded model takes the clinical context (a photo-only model does not)."""
        return self.encoding is not None

    def _sites(self) -> tuple[str, ...] | None:
        enc = self.encoding
        return enc.sites if enc is not None and "body_part" in enc.fields else None

    # -- user actions --------------------------------------------------------------------------------
    def set_field(self, name: str, value: Any) -> bool:
        """Set one field from a widget's value (``None``/"" = unknown). False, with a message naming the
        field, when the value cannot be read; the context is then unchanged."""
        try:
            parsed = parse_field(name, value, self._sites())
        except ContextError as exc:
            self.state.message.emit("warning", f"Clinical context: {exc}")
            self.field_rejected.emit(name, str(exc))
            return False
        self.set_context(replace(self.context, **{name: parsed}))
        return True

    def set_context(self, context: ClinicalContext, immediate: bool = False) -> None:
        if context == self.context:
            return
        self.context = context
        self.context_changed.emit(context)
        self._request(immediate)

    def reset(self) -> None:
        """Back to what the photo's manifest row said (or nothing)."""
        self.set_context(self.prefilled, immediate=True)

    def flush(self) -> None:
        """The debounce timer fired: start the latest context once the edits have been quiet long enough."""
        now = self.clock()
        ctx = self._debouncer.pop_due(now)
        if ctx is not None:
            self._start(ctx)
        elif self._debouncer.pending and self.timer is not None:
            self.timer.start(self._debouncer.time_left(now), self.flush)

    def shutdown(self) -> None:
        """The window closes: nothing pending may start or arrive."""
        self._drop_pending()

    # -- photo / model changes -------------------------------------------------------------------------
    def _view_changed(self) -> None:
        view = self.state.view
        self._drop_pending()
        self._set_comparison(None)
        if view is None:
            return
        if view.path != self.path:  # a new photo: its own row (the same photo again keeps the edits)
            self.path = view.path
            self.prefilled, problems = prefill_context(manifest_row(view.path), self._sites())
            for text in problems:
                self.state.message.emit("warning", f"{view.path.name}: manifest context {text}")
            self.context = self.prefilled
            self.context_changed.emit(self.context)
        self._request(immediate=True)

    def _drop_pending(self) -> None:
        self._ticket.invalidate()
        self._debouncer.pop_due(float("inf"))
        if self.timer is not None:
            self.timer.stop()
        handle, self._handle = self._handle, None
        self.coordinator.jobs.cancel(handle)
        self._set_pending(False)

    # -- the job -----------------------------------------------------------------------------------------
    def _request(self, immediate: bool) -> None:
        if not self.available or self.state.view is None:
            return
        if not self.context.known():  # nothing given: the photo-only answer is the whole answer
            self._drop_pending()
            self._set_comparison(None)
            return
        if immediate or self.timer is None:
            self._debouncer.pop_due(float("inf"))
            if self.timer is not None:
                self.timer.stop()
            self._start(self.context)
            return
        self._debouncer.push(self.context, self.clock())
        self._set_pending(True)
        self.timer.start(self._debouncer.time_left(self.clock()), self.flush)

    def _start(self, context: ClinicalContext) -> None:
        view, enc = self.state.view, self.encoding
        if view is None or enc is None:
            self._set_pending(False)
            return
        try:
            enc.encode(context)  # refuse here, naming the field, rather than fail inside the job
        except ContextError as exc:
            self._set_pending(False)
            self.state.message.emit("warning", f"Clinical context: {exc}")
            return
        self.coordinator.jobs.cancel(self._handle)  # a newer context supersedes the one in flight
        ticket = self._ticket.next()
        host = self.state.model

        def done(pred: Prediction) -> None:
            if not self._ticket.is_current(ticket) or self.state.view is not view:
                return
            self._handle = None
            self._set_pending(False)
            self._set_comparison(compare_context(view.path, view.prediction, pred, context))

        def failed(exc: Exception) -> None:
            if self._ticket.is_current(ticket):
                self._handle = None
                self._set_pending(False)
                self.state.message.emit("error", f"Prediction with the clinical context failed: {exc}")

        self._set_pending(True)
        self._handle = self.coordinator.run(lambda: predict_with_context(host, view.image, context), Lane.INTERACTIVE,
                                            done, failed)

    def _set_pending(self, pending: bool) -> None:
        if pending != self.pending:
            self.pending = pending
            self.pending_changed.emit(pending)

    def _set_comparison(self, comparison: ContextComparison | None) -> None:
        if comparison is None and self.comparison is None:
            return
        self.comparison = comparison
        self.comparison_changed.emit(comparison)
