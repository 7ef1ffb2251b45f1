"""Defects of issue 10, each reproduced in the real window on real PAD-UFES-20 photos.

- the Grad-CAM toggle kept the old photo's state after the next photo opened;
- the case list kept the old model's labels (and done status) after a model switch;
- a severity sweep queued the next photo behind it and kept painting after the photo changed;
- two lanes drove torch / ONNX Runtime at the full core count each.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dermviewer.state.cases import CaseStatus
from dermviewer.state.model import shipped_models
from engine.imageio import load_image
from engine.inference import Predictor

TIMEOUT = 60_000
IMAGES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20" / "images"


@pytest.fixture(scope="module")
def three_photos() -> list[Path]:
    names = ["PAT_100_393_898.jpg", "PAT_1022_115_132.jpg", "PAT_1029_135_239.jpg"]
    paths = [IMAGES / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"PAD-UFES-20 photos not found: {missing}")
    return paths


def _open(qtbot, win, *paths: Path) -> None:
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths(list(paths))


def test_gradcam_toggle_is_reset_when_the_next_photo_opens(make_window, qtbot, three_photos) -> None:
    first, second = three_photos[:2]
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    _open(qtbot, win, first)
    with qtbot.waitSignal(win.controller.gradcam_shown, timeout=TIMEOUT):
        win.findings.differential.cellClicked.emit(0, 0)
    toggle = win.overlay_bar.gradcam
    name = win.state.view.prediction.differential[0].name
    assert toggle.isChecked() and toggle.isEnabled()
    assert toggle.text() == f"Grad-CAM: {name}"

    _open(qtbot, win, second)
    assert win.state.gradcam is None
    assert "gradcam" not in win.canvas.overlay_kinds()
    assert not toggle.isChecked()
    assert not toggle.isEnabled()
    assert toggle.text() == "Grad-CAM"


def test_model_switch_clears_every_row_at_once_and_requeues_them(make_window, qtbot, three_photos,
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in three_photos:
        shutil.copyfile(p, folder / p.name)
    win = make_window(folder)
    cases = win.state.cases
    qtbot.waitUntil(lambda: all(c.status is CaseStatus.DONE for c in cases.cases) and len(cases) == 3,
                    timeout=TIMEOUT)
    rows = [win.case_list.item(i).text() for i in range(3)]
    assert all("%" in r for r in rows), rows

    student = next(m.path for m in shipped_models() if m.stem == "student")
    at_switch: dict[str, list] = {}

    def snapshot() -> None:  # the moment the new model is in place, before any of its results arrive
        at_switch["rows"] = [win.case_list.item(i).text() for i in range(3)]
        at_switch["status"] = [c.status for c in cases.cases]
        at_switch["pred"] = [c.prediction for c in cases.cases]

    win.controller.model_loaded.connect(snapshot)
    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        win.controller.load_model(student)
    assert at_switch["pred"] == [None, None, None]
    assert at_switch["status"] == [CaseStatus.PENDING] * 3
    assert all(r.endswith("…") and "%" not in r for r in at_switch["rows"]), at_switch["rows"]

    # ... and every photo is predicted again by the student, without being opened
    qtbot.waitUntil(lambda: all(c.status is CaseStatus.DONE for c in cases.cases), timeout=TIMEOUT)
    direct = Predictor(student, device="cpu")
    for i, c in enumerate(cases.cases):
        expected = direct.predict(load_image(c.path))
        np.testing.assert_allclose(c.prediction.disease_probs, expected.disease_probs, atol=1e-5)
        top = expected.top
        assert win.case_list.item(i).text().splitlines()[1].startswith(f"{top.code} {top.probability * 100:.0f}%")


def test_sweep_does_not_hold_up_the_next_photo_and_is_dropped_when_it_changes(make_window, qtbot,
                                                                              three_photos) -> None:
    first, second = three_photos[:2]
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    _open(qtbot, win, first, second)
    qtbot.waitUntil(lambda: win.state.cases[1].status is CaseStatus.DONE, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not win.controller.busy, timeout=TIMEOUT)

    steps: list[tuple[int, int]] = []
    win.controller.sweep_progress.connect(lambda item: steps.append((item[0], win.state.cases.current_index)))
    with qtbot.waitSignal(win.controller.sweep_progress, timeout=TIMEOUT):
        win.whatif_panel.sweep.click()
    assert not win.whatif_panel.cancel.isHidden()
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.actions_by_name["next"].trigger()
    shown_at = len(steps)
    qtbot.waitUntil(lambda: not win.controller.busy, timeout=TIMEOUT)
    # the photo did not wait for the remaining sweep steps, and none of them reached the second photo
    assert shown_at < 25
    assert [s for s in steps if s[1] == 1] == []
    assert win.whatif_panel.plot.result is None
    assert win.whatif_panel.sweep.isEnabled()
    assert win.whatif_panel.cancel.isHidden()
