"""The clinical-context panel in the real window, on a real PAD-UFES-20 photo opened beside its manifest: the
fields are pre-filled from the photo's row, an edit re-predicts, and the photo-plus-context differential drawn
beside the photo-only one is the one a separately built ``Predictor`` gives for that photo and context. The
model is the shipped default once it takes the context, a small real context bundle until then; the current
photo-only default shows a disabled panel saying so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QApplication

from dermviewer.qt.app import create_window
from dermviewer.qt.main_window import MainWindow
from dermviewer.state.context import prefill_context
from dermviewer.state.metadata import manifest_row
from dermviewer.state.settings import Settings
from engine.bundle import load_bundle
from engine.inference import Predictor
from engine.prediction import Prediction
from tests.dermviewer.state.test_context_state import FIRST, context_model_path, photo_only_model_path

TIMEOUT = 30_000


@pytest.fixture(scope="module")
def context_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FIRST.is_file():
        pytest.fail(f"PAD-UFES-20 photo not found: {FIRST}")
    return context_model_path(tmp_path_factory.mktemp("context-model"))


@pytest.fixture
def window_on(qapp: QApplication, qtbot) -> Iterator[Callable[[Path], MainWindow]]:
    """A window on a given model with fresh settings, ready; fails the test if a top-level widget leaks."""
    before = {id(w) for w in QApplication.topLevelWidgets()}
    windows: list[MainWindow] = []

    def make(model: Path) -> MainWindow:
        win = create_window(model=model, settings=Settings(device="cpu"))
        windows.append(win)
        win.show()
        qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
        return win

    yield make
    for win in windows:
        win.close()
        win.deleteLater()
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        qapp.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if id(w) not in before]
    assert not leaked, f"top-level widgets leaked: {leaked}"


def _by_name(p: Prediction) -> dict[str, float]:
    return {s.name: s.probability for s in p.differential}


def _assert_shows(shown: dict[str, float], expected: Prediction) -> None:
    exp = _by_name(expected)
    assert set(shown) == set(exp)
    np.testing.assert_allclose([shown[k] for k in exp], list(exp.values()), atol=1e-5)


def test_prefilled_fields_and_an_edit_bring_the_second_differential(window_on, qtbot, context_model) -> None:
    win = window_on(context_model)
    panel = win.findings.context
    reference = Predictor(load_bundle(context_model), device="cpu")  # not the window's model object
    with qtbot.waitSignals([win.controller.case_shown, panel.comparison_shown], timeout=TIMEOUT):
        win.controller.open_paths([FIRST])

    # -- pre-filled from the photo's manifest row (age 14, face, all six "no") ----------------------------
    row_ctx, _ = prefill_context(manifest_row(FIRST))
    assert row_ctx.age == 14 and row_ctx.body_part == "face"
    assert panel.age.value() == 14 and panel.age.isEnabled()
    assert panel.site.currentData() == "face" and panel.site.currentText() == "Face"
    assert panel.site.itemText(0) == "unknown"
    for name, group in panel.flags.items():
        assert group.checkedButton().text() == "no", name
    assert panel.table.isVisible()
    _assert_shows(panel.shown_probabilities(1), reference.predict(FIRST))
    _assert_shows(panel.shown_probabilities(2), reference.predict(FIRST, row_ctx))

    # -- edit one field: the second differential arrives, as the model says ----------------------------
    assert {"age", "bleed"} <= set(reference.context_encoding.fields), "this test edits the age and bleed fields"
    before = panel.shown_probabilities(2)
    photo_only = win.state.view.prediction
    bleeds = panel.findChild(type(panel.flags["bleed"].button(0)), "context_bleed_yes")
    with qtbot.waitSignal(panel.comparison_shown, timeout=TIMEOUT):
        qtbot.mouseClick(bleeds, Qt.MouseButton.LeftButton)
    edited = row_ctx.__class__(**{**row_ctx.to_dict(), "bleed": True})
    assert win.controller.context.context == edited
    expected = reference.predict(FIRST, edited)
    _assert_shows(panel.shown_probabilities(2), expected)
    after = panel.shown_probabilities(2)
    assert max(abs(after[k] - before[k]) for k in after) > 1e-3  # the edit changed the drawn differential
    assert win.state.view.prediction is photo_only  # the photo-only prediction was not re-run
    _assert_shows(panel.shown_probabilities(1), reference.predict(FIRST))
    # the change per class is drawn: Δ = with context - photo only, in points
    for i in range(panel.table.rowCount()):
        name, text = panel.table.item(i, 0).data(Qt.ItemDataRole.UserRole), panel.table.item(i, 3).text()
        pts = (after[name] - panel.shown_probabilities(1)[name]) * 100
        assert text.split()[-1] == f"{pts:+.1f}"
    assert "bleeds" in panel.status.text()

    # -- the age spin box, cleared to "unknown" ------------------------------------------------------------
    with qtbot.waitSignal(panel.comparison_shown, timeout=TIMEOUT):
        panel.age.setValue(-1)
    assert panel.age.text() == "unknown"
    _assert_shows(panel.shown_probabilities(2), reference.predict(FIRST, edited.without(["age"])))


def test_a_photo_only_model_shows_a_disabled_panel_saying_so(window_on, qtbot, tmp_path) -> None:
    win = window_on(photo_only_model_path(tmp_path))
    panel = win.findings.context
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([FIRST])
    assert panel.age.value() == 14  # the manifest row is still shown ...
    assert not panel.age.isEnabled() and not panel.site.isEnabled()  # ... but cannot be edited
    assert not panel.flags["itch"].button(0).isEnabled()
    assert "takes no clinical context" in panel.status.text()
    assert not panel.table.isVisible() and panel.comparison is None
