"""The model overlay's decisions, Qt-free: nothing is asked for while it is off, a photo is asked for once, a
result is kept for its photo and drawn only while that photo is shown, a new model forgets every result.
(On the real model and photos: tests/dermviewer/qt/test_annotate_overlay.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from dermviewer.state.annotate.model_overlay import ModelOverlay, PhotoExplanation
from dermviewer.state.overlays import OverlayKind, OverlayLayer


def _explanation(key: str, head: str = "disease") -> PhotoExplanation:
    layer = OverlayLayer(OverlayKind.LSM, values=np.eye(4, dtype=np.float32))
    return PhotoExplanation(key, head, (300, 300), (layer,), prediction=None)  # type: ignore[arg-type]


def test_model_overlay_draws_only_the_shown_photos_result() -> None:
    o = ModelOverlay(keep=2)
    assert not o.needs("a")  # off: nothing is asked for
    assert o.toggle() and o.needs("a")
    o.ask("a")
    assert not o.needs("a")  # on its way: not asked twice
    assert not o.arrived(_explanation("a"), shown_key="b")  # the user moved on: kept, not drawn
    assert o.shown("a") is not None and o.shown("b") is None
    assert o.arrived(_explanation("b"), shown_key="b")
    o.arrived(_explanation("c"), shown_key="b")
    assert o.shown("a") is None and o.needs("a")  # only the `keep` most recent stay
    assert not o.arrived(_explanation("b", "attributes"), shown_key="b")  # another head: not this overlay's
    o.toggle()
    assert o.shown("b") is None and not o.needs("d")
    o.toggle()
    o.clear()  # a new model: nothing of the old one is drawn
    assert o.shown("b") is None and o.needs("b")
    with pytest.raises(ValueError, match="LSM head"):
        ModelOverlay("body_part")
