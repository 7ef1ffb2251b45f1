"""A 12-megapixel JPEG (issue 14): shown and predicted from the DCT-scaled decode, with every pixel decoded
only when the user asks for 1:1 / zooms in, and then drawn at one photo pixel per screen pixel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.imageio import DISPLAY_MAX_SIDE, load_image, save_image

TIMEOUT = 120_000
ORIGINAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20" / "originals" \
    / "PAT_1278_965_701.png"


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    big = cv2.resize(load_image(ORIGINAL), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("big") / "phone_12mp.jpg"
    save_image(path, big, jpeg_quality=90)
    return path


def test_a_12mp_jpeg_is_shown_decoded_small_and_full_resolution_only_at_1_to_1(make_window, qtbot,
                                                                               phone_photo: Path) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([phone_photo])
    view = win.state.view
    assert view is not None and view.image.shape == (1500, 2000, 3)  # decoded at half size
    assert max(view.image.shape[:2]) >= DISPLAY_MAX_SIDE
    assert view.prediction.image_size == (1500, 2000)  # boxes and maps are placed in these pixels
    assert win.canvas.image_size == (1500, 2000) and win.canvas.native_scale == pytest.approx(2.0)
    assert win.canvas.photo.detail is None and win.full_resolution.loaded is None  # nothing more decoded yet

    win.actions_by_name["actual"].trigger()
    assert win.canvas.zoom == pytest.approx(2.0)  # one photo pixel per screen pixel
    qtbot.waitUntil(lambda: win.full_resolution.loaded == phone_photo, timeout=TIMEOUT)
    detail = win.canvas.photo.detail
    assert detail is not None and (detail.width(), detail.height()) == (4000, 3000)
    grabbed = win.canvas.grab_array()
    assert grabbed.std() > 5  # the canvas draws the photo, not an empty scene

    win.actions_by_name["fit"].trigger()
    assert win.canvas.zoom < 1.0
    np.testing.assert_array_equal(win.state.view.image, view.image)  # the prediction's photo is unchanged


def test_a_small_photo_never_loads_anything_more(make_window, qtbot, photo: Path) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([photo])
    win.actions_by_name["actual"].trigger()
    win.canvas.zoom_in()
    qtbot.wait(300)
    assert win.canvas.native_scale == 1.0 and win.canvas.photo.detail is None
    assert win.full_resolution.loaded is None
