"""``dermviewer.state.overlays`` draws the LSM map, token boxes and colours without torch (issue 14) by the
rules of ``engine.explain``; these pin the two equal on a real prediction, so neither can drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermviewer.state.overlays import COLORMAPS, colorize, lsm_map, token_boxes
from engine.explain import COLORMAPS as ENGINE_COLORMAPS
from engine.explain import lsm_map as engine_lsm_map
from engine.explain import overlay, selected_boxes


def test_overlays_match_engine_explain(predictor, photo: Path) -> None:
    pred = predictor.predict(photo)
    size = pred.image_size
    assert COLORMAPS == ENGINE_COLORMAPS
    for head in ("disease", "attributes"):
        ours = lsm_map(pred, head)
        assert ours is not None and ours.values is not None
        np.testing.assert_array_equal(ours.values, engine_lsm_map(pred, head=head, normalize=True))
        boxes = token_boxes(pred, head, size)
        assert boxes is not None
        want = [(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                for x0, y0, x1, y1 in selected_boxes(pred.selected[head], pred.grid_size, size)]
        assert list(boxes.boxes) == want and want
        for cmap in ("jet", "viridis"):
            got = colorize(ours.values, (600, 450), cmap)
            ref = overlay(np.zeros((600, 450, 3), np.uint8), ours.values, cmap, alpha=1.0, alpha_from_map=True)
            np.testing.assert_array_equal(got, ref)


def test_colorize_rejects_what_engine_explain_rejects() -> None:
    import pytest

    with pytest.raises(ValueError, match="colormap"):
        colorize(np.ones((4, 4), np.float32), (10, 10), "no-such-map")
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.ones(4, np.float32), (10, 10))
    assert colorize(np.full((3, 3), 7.0, np.float32), (10, 10))[..., 3].max() == 0  # constant map: transparent
