from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from dermviewer.state.app_state import AppState
from dermviewer.state.jobs import analyze_photo, predict_many, predict_whatif
from dermviewer.state.model import ModelHost, ModelInfo
from dermviewer.state.overlays import OverlayKind, OverlaySettings, colorize, lsm_map, token_boxes
from dermviewer.state.report import (
    DISCLAIMER,
    ReportContent,
    ReportError,
    case_report,
    compose_overlays,
    default_report_name,
    report_html,
)
from dermviewer.state.settings import Settings
from dermviewer.state.sweep import SWEEP_CORRUPTIONS, run_sweep
from dermviewer.state.whatif import WhatIfParams, compare
from engine.corrupt import salt_and_pepper
from engine.imageio import load_image
from engine.prediction import Prediction


@pytest.fixture(scope="module")
def host() -> ModelHost:
    import resources

    h = ModelHost()
    h.load(resources.default_model_path(), device="cpu")
    return h


def test_colorize_makes_display_sized_rgba_with_score_alpha() -> None:
    m = np.zeros((8, 8), np.float32)
    m[0, 0] = 1.0
    rgba = colorize(m, (3000, 4000), "viridis")
    assert rgba.shape == (576, 768, 4)
    assert rgba.dtype == np.uint8
    assert rgba[0, 0, 3] > rgba[-1, -1, 3]
    with pytest.raises(ValueError, match="colormap"):
        colorize(m, (10, 10), "rainbow-unicorn")


def test_token_boxes_tile_the_photo_row_major() -> None:
    p = Prediction([], [], [], selected={"disease": [0, 9]}, grid_size=(8, 8))
    layer = token_boxes(p, "disease", (800, 1600))
    assert layer is not None
    assert layer.boxes == ((0.0, 0.0, 200.0, 100.0), (200.0, 100.0, 200.0, 100.0))  # (x, y, w, h)
    assert token_boxes(p, "attributes", (8, 8)) is None


def test_analyze_photo_matches_engine(host: ModelHost, photo: Path, predictor) -> None:
    view = analyze_photo(host, photo)
    direct = predictor.predict(load_image(photo))
    assert [s.code for s in view.prediction.differential] == [s.code for s in direct.differential]
    np.testing.assert_allclose([s.probability for s in view.prediction.differential],
                               [s.probability for s in direct.differential], rtol=1e-5, atol=1e-6)
    kinds = {la.kind for la in view.layers["disease"]}
    assert kinds == {OverlayKind.LSM, OverlayKind.TOKENS}
    assert lsm_map(view.prediction, "disease") is not None
    assert view.metadata


def test_whatif_prediction_equals_engine_on_the_same_corruption(host: ModelHost, photo: Path, predictor) -> None:
    img = load_image(photo)
    w = predict_whatif(host, img, WhatIfParams(sp_amount=0.04))
    direct = predictor.predict(salt_and_pepper(img, amount=0.04, black_ratio=0.75, seed=0))
    np.testing.assert_allclose(w.prediction.disease_probs, direct.disease_probs, rtol=1e-5, atol=1e-6)
    assert np.array_equal(w.image, salt_and_pepper(img, amount=0.04, black_ratio=0.75, seed=0))


def test_predict_many_reports_bad_files_by_name_and_carries_on(host: ModelHost, photo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    items = list(predict_many(host, [bad, photo], lambda: False))
    assert [i.done for i in items] == [1, 2]
    assert items[0].error is not None
    assert "broken.jpg" in items[0].error
    assert items[1].prediction is not None
    assert items[1].thumbnail is not None
    assert max(items[1].thumbnail.shape[:2]) == 96


def test_predict_many_stops_when_cancelled(host: ModelHost, photo: Path) -> None:
    assert list(predict_many(host, [photo, photo], lambda: True)) == []


def test_sweep_has_a_clean_point_and_five_levels_per_corruption(host: ModelHost, photo: Path) -> None:
    img = load_image(photo)
    steps = list(run_sweep(host.predictor, img))
    done, total, result = steps[-1]
    assert done == total == 5 * len(SWEEP_CORRUPTIONS)
    for name in SWEEP_CORRUPTIONS:
        levels, probs = result.series(name)
        assert levels == [0, 1, 2, 3, 4, 5]
        assert all(0.0 <= p <= 1.0 for p in probs)


def test_report_html_carries_disclaimer_model_and_whatif(host: ModelHost, photo: Path) -> None:
    view = analyze_photo(host, photo)
    w = predict_whatif(host, view.image, WhatIfParams(sp_amount=0.05))
    info = host.info
    assert isinstance(info, ModelInfo)
    content = ReportContent(photo.name, view.prediction, info, ["LSM attention (disease)"], view.metadata,
                            compare(view.prediction, w.prediction), w.params)
    html = report_html(content)
    for needle in (DISCLAIMER, info.name, "Differential", "Body part", "Attributes", "What-if"):
        assert needle in html
    assert ("Untrained placeholder" in html) == info.untrained  # only placeholder models are flagged
    comp = compose_overlays(view.image, view.layers["disease"], OverlaySettings())
    assert comp.shape[2] == 3
    assert not np.array_equal(comp, view.image[: comp.shape[0], : comp.shape[1]])


def test_case_report_is_what_the_window_shows(host: ModelHost, photo: Path) -> None:
    state = AppState(Settings(top_k=3))
    with pytest.raises(ReportError, match="open a photo"):
        case_report(state)
    state.model = host
    view = analyze_photo(host, photo)
    state.set_view(view)
    state.set_overlay(tokens=False)
    rep = case_report(state)
    assert rep.content.case_name == photo.name and rep.content.top_k == 3
    assert rep.content.prediction is view.prediction and rep.content.model == host.info
    assert rep.content.overlays_shown == ["LSM attention (disease)"] == state.shown_overlay_names()
    assert rep.content.whatif is None and rep.content.whatif_params is None and rep.whatif_photo is None
    assert rep.photo is view.image
    np.testing.assert_array_equal(rep.overlay, compose_overlays(view.image, view.layers["disease"], state.overlays))
    assert default_report_name(state, dt.date(2026, 1, 2)) == f"{photo.stem}_report_20260102.pdf"

    params = WhatIfParams(sp_amount=0.05)
    state.whatif_params = params
    state.set_whatif(predict_whatif(host, view.image, params))
    rep = case_report(state)
    assert rep.whatif_photo is state.whatif.image and rep.content.whatif_params == params
    assert rep.content.whatif is not None and rep.content.whatif.rows
    # the overlay panel of the report is drawn on the corrupted photo, as the canvas shows it
    np.testing.assert_array_equal(rep.overlay, compose_overlays(state.whatif.image, state.whatif.layers["disease"],
                                                                state.overlays))
