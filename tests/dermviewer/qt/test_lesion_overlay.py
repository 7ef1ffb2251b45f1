"""The lesion finder in the review window (issue 15), on real PAD-UFES-20 photos: the outline drawn is the
engine's mask, the overlay has its own toggle, colour and opacity, a found lesion can be chosen so the
differential is of its crop, and a photo of plain skin says that no lesion was found."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dermviewer.state.lesions import lesion_layer
from dermviewer.state.overlays import OverlayKind
from engine.imageio import DISPLAY_MAX_SIDE, load_image, save_image
from engine.inference import Predictor
from engine.lesions import LesionFinder, default_finder_path, lesion_crop
from engine.masks import load_mask
from resources import default_model_path

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20"
PHOTO = DATA / "images" / "PAT_1022_115_132.jpg"
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def finder() -> LesionFinder:
    if not default_finder_path().is_file():
        pytest.fail(f"the lesion finder is not shipped: {default_finder_path()}")
    return LesionFinder(default_finder_path(), threads=1)


def _open(qtbot, win, path: Path) -> None:
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    with qtbot.waitSignal(win.controller.coordinator.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([path])


def test_the_outline_drawn_is_the_engines_mask(make_window, qtbot, finder: LesionFinder) -> None:
    win = make_window()
    _open(qtbot, win, PHOTO)
    view = win.state.view
    image = load_image(PHOTO, max_side=DISPLAY_MAX_SIDE)
    direct = finder.find(image)
    assert direct.found and view.lesions is not None
    np.testing.assert_array_equal(view.lesions.mask, direct.mask)
    assert [les.box for les in view.lesions.lesions] == [les.box for les in direct.lesions]
    drawn = [la for la in win.state.displayed_layers() if la.kind is OverlayKind.LESION]
    assert len(drawn) == 1
    expected = lesion_layer(direct, image.shape[:2], win.state.overlays.lesion_colour)
    np.testing.assert_array_equal(drawn[0].values, expected.values)
    # the outline runs along the mask's edge (the frame's border, where the lesion is cut by it): every
    # outline pixel is within 3 display pixels of it
    padded = cv2.copyMakeBorder(direct.mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    edge = cv2.morphologyEx(padded, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))[1:-1, 1:-1] > 0
    small_edge = cv2.resize(edge.astype(np.uint8), drawn[0].values.shape[::-1], interpolation=cv2.INTER_NEAREST)
    dist = cv2.distanceTransform((small_edge == 0).astype(np.uint8), cv2.DIST_L2, 3)
    assert float(dist[drawn[0].values > 0].max()) <= 3.0
    assert "lesion" in win.canvas.overlay_kinds()
    assert win.overlay_bar.lesion_status.text() == direct.summary()

    # toggle, colour and opacity are the user's
    bar = win.overlay_bar
    bar.lesion.setChecked(False)
    assert not win.state.overlays.lesion and "lesion" not in win.canvas.overlay_kinds()
    bar.lesion.setChecked(True)
    bar.lesion_colour.setCurrentIndex(2)
    bar.lesion_opacity.setValue(40)
    o = win.state.overlays
    assert o.lesion_colour == bar.lesion_colour.itemData(2) and o.lesion_opacity == pytest.approx(0.4)
    rgba = next(la for la in win.state.displayed_layers() if la.kind is OverlayKind.LESION).rgba(
        image.shape[:2], o.colormap)
    on = rgba[..., 3] > 0
    assert tuple(int(c) for c in rgba[on][0, :3]) == tuple(int(o.lesion_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_choosing_a_lesion_gives_the_differential_of_its_crop_and_back(make_window, qtbot,
                                                                        finder: LesionFinder) -> None:
    win = make_window()
    _open(qtbot, win, PHOTO)
    whole = win.state.view
    choice = win.overlay_bar.lesion_choice
    assert choice.count() == 1 + len(whole.lesions.lesions) and choice.isEnabled()
    with qtbot.waitSignal(win.controller.coordinator.case_shown, timeout=TIMEOUT):
        choice.setCurrentIndex(1)
        choice.activated.emit(1)
    view = win.state.view
    assert view.lesion_index == 0 and view.whole is whole
    crop = lesion_crop(whole.image, whole.lesions.lesions[0].box)
    np.testing.assert_array_equal(view.image, crop)
    direct = Predictor(default_model_path(), device="cpu", backend="onnx").predict(crop)
    np.testing.assert_allclose(view.prediction.disease_probs, direct.disease_probs, atol=1e-4)
    assert win.canvas.image_size == crop.shape[:2]
    with qtbot.waitSignal(win.controller.coordinator.case_shown, timeout=TIMEOUT):
        choice.activated.emit(0)
    assert win.state.view is whole and choice.currentIndex() == 0


def test_plain_skin_says_no_lesion_was_found(make_window, qtbot, tmp_path: Path) -> None:
    """A lesion-free skin quadrant of a real photo (tests/engine/test_lesions.py, PLAIN_SKIN), as a photo."""
    rgb = load_image(DATA / "images" / "PAT_1177_633_705.jpg")
    mask = load_mask(DATA / "masks" / "PAT_1177_633_705.png", rgb.shape[:2])
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    y0 = 0 if ys.mean() > h / 2 else h // 2
    x0 = 0 if xs.mean() > w / 2 else w // 2
    skin = cv2.resize(rgb[y0:y0 + h // 2, x0:x0 + w // 2], (w, h), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "plain_skin.png"
    save_image(path, skin)
    win = make_window()
    _open(qtbot, win, path)
    assert win.state.view.lesions is not None and not win.state.view.lesions.found
    assert win.overlay_bar.lesion_status.text() == "no lesion found above the threshold"
    assert not win.overlay_bar.lesion_choice.isEnabled()
    assert "lesion" not in win.canvas.overlay_kinds()


def test_a_found_outline_exported_as_a_mask_round_trips(tmp_path: Path, finder: LesionFinder) -> None:
    rgb = load_image(PHOTO)
    found = finder.find(rgb)
    out = tmp_path / "found_mask.png"
    save_image(out, np.repeat((found.mask * 255).astype(np.uint8)[..., None], 3, axis=2))
    np.testing.assert_array_equal(load_mask(out, rgb.shape[:2]), found.mask)
