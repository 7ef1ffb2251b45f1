"""End to end on a real PAD-UFES-20 photo: the panels agree with the engine run directly, each overlay
toggles, the what-if slider re-predicts to the engine's answer on the same corruption, a corrupt file is
reported by name and the app carries on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermviewer.qt.menus import export_report
from dermviewer.state.cases import CaseStatus
from engine.corrupt import salt_and_pepper
from engine.imageio import load_image

TIMEOUT = 30_000


def _open(qtbot, win, *paths: Path) -> None:
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths(list(paths))


def test_photo_panels_overlays_and_whatif_agree_with_engine(make_window, qtbot, photo: Path, predictor,
                                                            tmp_path: Path) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    assert win.banner.isVisible() == predictor.bundle.untrained  # the banner flags placeholder models only
    _open(qtbot, win, photo)
    image = load_image(photo)
    direct = predictor.predict(image)

    # -- panels ---------------------------------------------------------------------------------------
    table = win.findings.differential
    k = win.findings.top_k.value()
    assert table.rowCount() == k
    for row, s in enumerate(direct.differential[:k]):
        assert table.item(row, 0).text() == s.name
        assert table.row_probability(row) == pytest.approx(s.probability, abs=1e-5)
        assert (table.item(row, 2).text() == "malignant") == s.malignant
    attrs = win.findings.attributes
    for row, s in enumerate(direct.attributes):
        assert attrs.row_probability(row) == pytest.approx(s.probability, abs=1e-5)
        assert bool(attrs.item(row, 2).text()) == s.positive
    top_bp = max(direct.body_parts, key=lambda s: s.probability)
    assert win.findings.body_parts.item(0, 0).text() == top_bp.name
    assert win.findings.uncertain.isVisibleTo(win) == direct.is_uncertain()
    assert win.findings.meta_box.isVisibleTo(win)

    # -- overlays -------------------------------------------------------------------------------------
    kinds = win.canvas.overlay_kinds()
    assert "lsm" in kinds
    assert kinds.count("tokens") == len(direct.selected["disease"])
    win.overlay_bar.lsm.setChecked(False)
    assert "lsm" not in win.canvas.overlay_kinds()
    win.overlay_bar.tokens.setChecked(False)
    assert win.canvas.overlay_kinds() == []
    win.overlay_bar.lsm.setChecked(True)
    win.overlay_bar.head.setCurrentText("attributes")
    assert win.canvas.overlay_kinds() == ["lsm"]
    win.overlay_bar.head.setCurrentText("disease")
    win.overlay_bar.tokens.setChecked(True)
    with qtbot.waitSignal(win.controller.gradcam_shown, timeout=TIMEOUT):
        table.cellClicked.emit(1, 0)  # the second class of the differential
    assert "gradcam" in win.canvas.overlay_kinds()
    assert win.state.explain_target is not None
    assert win.state.explain_target.name == direct.differential[1].name
    win.overlay_bar.gradcam.setChecked(False)
    assert "gradcam" not in win.canvas.overlay_kinds()
    win.overlay_bar.gradcam.setChecked(True)
    win.overlay_bar.split.setChecked(True)
    assert win.canvas.split_line.isVisible()
    assert win.canvas.clip.rect().width() < image.shape[1]
    win.overlay_bar.split.setChecked(False)
    assert win.canvas.clip.rect().width() == image.shape[1]
    win.overlay_bar.colormap.setCurrentText("viridis")
    assert win.state.settings.colormap == "viridis"
    win.overlay_bar.opacity.setValue(80)
    assert win.state.overlays.opacity == pytest.approx(0.8)

    # -- what-if --------------------------------------------------------------------------------------
    with qtbot.waitSignal(win.controller.whatif_shown, timeout=TIMEOUT):
        win.whatif_panel.sliders["sp_amount"].setValue(30)  # 3 %
    expected = predictor.predict(salt_and_pepper(image, amount=0.03, black_ratio=0.75, seed=0))
    got = win.state.whatif.prediction
    np.testing.assert_allclose(got.disease_probs, expected.disease_probs, rtol=1e-5, atol=1e-6)
    assert win.whatif_panel.table.rowCount() == len(direct.differential)
    flag = win.whatif_panel.flag.text()
    cmp = win.state.comparison()
    assert cmp is not None
    assert ("changed" in flag) and (("→" in flag) == cmp.changed)
    assert np.array_equal(win.state.displayed_image(), salt_and_pepper(image, amount=0.03, black_ratio=0.75, seed=0))
    assert "tokens" in win.canvas.overlay_kinds()

    # -- report -------------------------------------------------------------------------------------
    pdf = export_report(win, tmp_path / "report.pdf")
    assert pdf is not None
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert b"Exif" not in data

    # -- reset ----------------------------------------------------------------------------------------
    win.whatif_panel.reset_params()
    assert win.state.whatif is None
    assert np.array_equal(win.state.displayed_image(), image)


def test_corrupt_file_is_reported_by_name_and_the_app_carries_on(make_window, qtbot, photo: Path,
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "garbage.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a photo " * 20)
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    win.controller.open_paths([bad])
    qtbot.waitUntil(lambda: any("garbage.jpg" in text for _lvl, text in win.messages.history), timeout=TIMEOUT)
    assert win.messages.isVisible()
    assert win.messages.history[-1][0] == "error"
    assert win.state.cases[0].status is CaseStatus.FAILED
    assert win.state.view is None
    _open(qtbot, win, photo)
    assert win.state.view is not None
    assert win.state.cases.current_index == 1


def test_folder_runs_with_progress_bad_files_included_and_keyboard_navigation(make_window, qtbot, photo: Path,
                                                                              tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(photo.read_bytes())
    (folder / "p9_bad.png").write_bytes(b"not a png")
    win = make_window(folder)
    with qtbot.waitSignal(win.controller.folder_finished, timeout=TIMEOUT):
        pass
    qtbot.waitUntil(lambda: all(c.status is not CaseStatus.PENDING for c in win.state.cases.cases), timeout=TIMEOUT)
    statuses = [c.status for c in win.state.cases.cases]
    assert statuses == [CaseStatus.DONE] * 3 + [CaseStatus.FAILED]
    assert any("p9_bad.png" in t for _l, t in win.messages.history)
    assert win.case_list.count() == 4
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.actions_by_name["next"].trigger()
    assert win.state.cases.current_index == 1
    assert "PgDown" in win.actions_by_name["next"].shortcut().toString() or win.actions_by_name["next"].shortcuts()
    win.actions_by_name["zoom_in"].trigger()
    z = win.canvas.zoom
    win.actions_by_name["fit"].trigger()
    assert win.canvas.zoom != z
    win.actions_by_name["actual"].trigger()
    assert win.canvas.zoom == pytest.approx(1.0)
