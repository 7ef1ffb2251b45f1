"""The loaded model's explanation beside the labels (issue 13: "each photo shows the model's prediction and
overlays beside the current labels"): the LSM attention map and the LSM-selected tokens (Lesion Selection
Module, DermImitFormer Eq. 1) of the photo being annotated, as the layers the review mode draws
(:mod:`dermviewer.state.overlays`, held equal to ``engine.explain``).

:func:`explain_photo` is the job (it runs the model: the Qt layer puts it on the job runner);
:class:`ModelOverlay` decides what is asked for and what is drawn: a result is kept for its photo, and
drawn only while the overlay is on and that photo is the one shown. A new model forgets them all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermviewer.state.overlays import LSM_HEADS, OverlayLayer, lsm_map, token_boxes
from engine.prediction import Prediction

__all__ = ["ModelOverlay", "PhotoExplanation", "explain_photo"]


@dataclass(frozen=True)
class PhotoExplanation:
    """The overlay layers of one photo (``layers`` empty: the model has no LSM for ``head``)."""

    key: str
    head: str
    image_size: tuple[int, int]  # (h, w) of the photo as loaded, the frame the token boxes are in
    layers: tuple[OverlayLayer, ...]
    prediction: Prediction


def explain_photo(predictor: Any, key: str, path: str | Path, head: str = "disease") -> PhotoExplanation:
    """Run ``predictor`` on the photo (loaded whole, as the annotate canvas shows it) and build its layers."""
    pred = predictor.predict(Path(path))
    size = (int(pred.image_size[0]), int(pred.image_size[1]))
    layers = tuple(x for x in (lsm_map(pred, head), token_boxes(pred, head, size)) if x is not None)
    return PhotoExplanation(key, head, size, layers, pred)


class ModelOverlay:
    """Whether the overlay is on, which photos' explanations are known or asked for (for the loaded model)."""

    def __init__(self, head: str = "disease", keep: int = 256) -> None:
        if head not in LSM_HEADS:
            raise ValueError(f"no LSM head {head!r} (heads: {', '.join(LSM_HEADS)})")
        self.enabled, self.head, self.keep = False, head, keep
        self.known: OrderedDict[str, PhotoExplanation] = OrderedDict()  # the most recent `keep` photos
        self.asked: set[str] = set()

    def toggle(self) -> bool:
        self.enabled = not self.enabled
        return self.enabled

    def clear(self) -> None:
        """The model changed: what was computed with the previous one must not be drawn."""
        self.known.clear()
        self.asked.clear()

    def needs(self, key: str) -> bool:
        """True when the overlay is on and ``key`` has neither an explanation nor one on the way."""
        return self.enabled and key not in self.known and key not in self.asked

    def ask(self, key: str) -> None:
        self.asked.add(key)

    def failed(self, key: str) -> None:
        self.asked.discard(key)

    def arrived(self, explanation: PhotoExplanation, shown_key: str) -> bool:
        """Keep the result; True when it is to be drawn now (overlay on, its photo shown, its head)."""
        self.asked.discard(explanation.key)
        if explanation.head != self.head:
            return False
        self.known[explanation.key] = explanation
        self.known.move_to_end(explanation.key)
        while len(self.known) > self.keep:
            self.known.popitem(last=False)
        return self.enabled and explanation.key == shown_key

    def shown(self, key: str) -> PhotoExplanation | None:
        """What to draw over photo ``key`` now: None when the overlay is off or its result is not in."""
        return self.known.get(key) if self.enabled else None
