"""End to end on a real PAD-UFES-20 photo: the panels show what the bundle's torch module computes on pixels
prepared here (cv2/numpy from the bundle's config, not through ``Predictor``), each overlay toggles, the
what-if slider re-predicts to the same independent answer on the same corruption, a corrupt file is
reported by name and the app carries on."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFormLayout

from dermviewer.qt.menus import export_report
from dermviewer.state.cases import CaseStatus
from engine.corrupt import salt_and_pepper
from engine.imageio import load_image

TIMEOUT = 30_000


@dataclass
class Reference:
    """A prediction computed without ``Predictor``/``decode_outputs``: names, probabilities, flags."""

    differential: list[tuple[str, float, bool]]  # (name, probability, malignant), most likely first
    attributes: list[tuple[str, float, bool]]  # (name, probability, above threshold), taxonomy order
    top_body_part: str
    selected_disease: int  # how many tokens the disease LSM selected
    disease_probs: np.ndarray  # taxonomy order


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def reference(bundle, rgb: np.ndarray) -> Reference:
    cfg = bundle.preprocess
    assert cfg.interpolation == "area" and min(rgb.shape[:2]) >= cfg.img_size  # a shrink: cv2's INTER_AREA
    x = cv2.resize(rgb, (cfg.img_size, cfg.img_size), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    x = (x - np.array(cfg.mean)) / np.array(cfg.std)
    model = bundle.build_model("cpu")
    t = torch.from_numpy(x.transpose(2, 0, 1)[None]).float()
    with torch.no_grad():
        out = {k: v.double().numpy()[0] for k, v in model(t).items()}
        flipped = {k: v.double().numpy()[0] for k, v in model(t.flip(-1)).items()} if cfg.tta_hflip else None
    tax = bundle.taxonomy
    disease = _softmax(out["disease_fused"])
    attrs = 1.0 / (1.0 + np.exp(-out["attributes"]))
    body_p = _softmax(out["body_part"])
    if flipped is not None:  # the bundle's flip TTA: probabilities of the photo and its mirror, averaged
        disease = (disease + _softmax(flipped["disease_fused"])) / 2
        attrs = (attrs + 1.0 / (1.0 + np.exp(-flipped["attributes"]))) / 2
        body_p = (body_p + _softmax(flipped["body_part"])) / 2
    classes = tax.head("disease").classes
    diff = sorted(((c.name, float(p), c.malignant) for c, p in zip(classes, disease, strict=True)), key=lambda r: -r[1])
    thr = bundle.threshold("attributes")
    attr_classes = tax.head("attributes").classes
    attributes = [(c.name, float(p), bool(p >= thr)) for c, p in zip(attr_classes, attrs, strict=True)]
    body = tax.head("body_part").classes[int(np.argmax(body_p))].name
    return Reference(diff, attributes, body, len(out["selected_disease"]), disease)


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
    direct = reference(predictor.bundle, image)

    # -- panels ---------------------------------------------------------------------------------------
    table = win.findings.differential
    k = win.findings.top_k.value()
    assert table.rowCount() == k
    for row, (name, prob, malignant) in enumerate(direct.differential[:k]):
        assert table.item(row, 0).text() == name
        assert table.row_probability(row) == pytest.approx(prob, abs=1e-4)
        assert (table.item(row, 2).text() == "malignant") == malignant
    attrs = win.findings.attributes
    assert attrs.rowCount() == len(direct.attributes)
    for row, (name, prob, positive) in enumerate(direct.attributes):
        assert attrs.item(row, 0).text() == name
        assert attrs.row_probability(row) == pytest.approx(prob, abs=1e-4)
        assert bool(attrs.item(row, 2).text()) == positive
    assert win.findings.body_parts.item(0, 0).text() == direct.top_body_part
    assert win.findings.uncertain.isVisibleTo(win) == win.state.view.prediction.is_uncertain()
    assert win.findings.meta_box.isVisibleTo(win)
    with (photo.parents[1] / "manifest.csv").open(newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if Path(r["image"]).name == photo.name)
    form = win.findings.meta_form
    shown = {form.itemAt(i, QFormLayout.ItemRole.LabelRole).widget().text():
             form.itemAt(i, QFormLayout.ItemRole.FieldRole).widget().text() for i in range(form.rowCount())}
    assert shown == {"Age:": row["age"], "Sex:": row["gender"], "Fitzpatrick type:": row["fitzpatrick"],
                     "Region:": row["body_part"].replace("_", " ")}

    # -- overlays -------------------------------------------------------------------------------------
    def model_kinds() -> list[str]:  # the lesion finder's outline is a layer of its own (test_lesion_overlay.py)
        return [k for k in win.canvas.overlay_kinds() if k != "lesion"]

    kinds = model_kinds()
    assert "lsm" in kinds
    assert kinds.count("tokens") == direct.selected_disease
    win.overlay_bar.lsm.setChecked(False)
    assert "lsm" not in model_kinds()
    win.overlay_bar.tokens.setChecked(False)
    assert model_kinds() == []
    win.overlay_bar.lsm.setChecked(True)
    win.overlay_bar.head.setCurrentText("attributes")
    assert model_kinds() == ["lsm"]
    win.overlay_bar.head.setCurrentText("disease")
    win.overlay_bar.tokens.setChecked(True)
    with qtbot.waitSignal(win.controller.gradcam_shown, timeout=TIMEOUT):
        table.cellClicked.emit(1, 0)  # the second class of the differential
    assert "gradcam" in win.canvas.overlay_kinds()
    assert win.state.explain_target is not None
    assert win.state.explain_target.name == direct.differential[1][0]
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
    expected = reference(predictor.bundle, salt_and_pepper(image, amount=0.03, black_ratio=0.75, seed=0))
    got = win.state.whatif.prediction
    np.testing.assert_allclose(got.disease_probs, expected.disease_probs, atol=1e-4)
    assert win.whatif_panel.table.rowCount() == len(direct.differential)
    flag = win.whatif_panel.flag.text()
    cmp = win.state.comparison()
    assert cmp is not None
    assert cmp.changed == (expected.differential[0][0] != direct.differential[0][0])
    clean_top, corrupted_top = direct.differential[0][0], expected.differential[0][0]
    if cmp.changed:
        assert flag.startswith(f"⚠ Prediction changed: {clean_top} → {corrupted_top}"), flag
    else:
        assert flag.startswith(f"✓ Prediction unchanged ({clean_top})"), flag
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
    keys = win.actions_by_name["next"].shortcuts()
    assert QKeySequence(Qt.Key.Key_PageDown) in keys and QKeySequence("N") in keys
    win.actions_by_name["zoom_in"].trigger()
    z = win.canvas.zoom
    win.actions_by_name["fit"].trigger()
    assert win.canvas.zoom != z
    win.actions_by_name["actual"].trigger()
    assert win.canvas.zoom == pytest.approx(1.0)
