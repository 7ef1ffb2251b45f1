"""The research panel on the real shared data and the bundled default model: the mode opens on the
default's out-of-fold predictions, a confusion-matrix click shows exactly that cell's photos, the
inspector opens a photo and its neighbours, and an evaluation runs to the end in the background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from dermviewer.qt.research import ResearchPanel
from dermviewer.state.app_state import AppState, Mode
from dermviewer.state.research.dataset import open_manifest
from dermviewer.state.research.export import export_manifest
from dermviewer.state.settings import Settings

TIMEOUT = 60_000
SPEC = Path(__file__).resolve().parents[3] / "configs" / "data" / "pad_ufes_20.yaml"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMVIEWER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def loaded_state() -> AppState:
    import resources

    state = AppState(Settings(device="cpu"))
    state.model.load(resources.default_model_path(), device="cpu")
    return state


@pytest.fixture
def panel(qtbot, loaded_state: AppState) -> ResearchPanel:
    p = ResearchPanel(loaded_state)
    qtbot.addWidget(p)
    p.resize(1400, 860)
    p.show()  # showing it opens the default's out-of-fold file
    qtbot.waitUntil(lambda: p.session.result is not None, timeout=TIMEOUT)
    yield p
    p.shutdown()
    loaded_state.model_changed.disconnect(p._model_changed)


def _worst_confusion(panel: ResearchPanel) -> tuple[int, int]:
    """The off-diagonal cell with the most photos (MEL called NEV for today's default)."""
    cm = panel.confusion.matrix.copy()
    np.fill_diagonal(cm, 0)
    t, p = np.unravel_index(int(cm.argmax()), cm.shape)
    return int(t), int(p)


def test_the_mode_switcher_opens_research_on_the_default_oof(make_window, qtbot) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    action = win.findChild(QAction, "mode_research")
    assert action is not None and action.isEnabled() and "coming" not in action.text()
    action.trigger()
    panel = win.research_panel
    assert panel is not None and win.mode_stack.currentWidget() is panel and win.state.mode is Mode.RESEARCH
    qtbot.waitUntil(lambda: panel.session.result is not None, timeout=TIMEOUT)
    ds = panel.session.dataset
    stem = win.state.model.predictor.bundle.path.stem
    assert ds.kind == "oof" and ds.source.name == f"{stem}.oof.h5" and len(ds) == 666
    assert "666 photos" in panel.dataset_label.text()
    assert panel.confusion.matrix.sum() == panel.session.metrics.n_scored
    win.findChild(QAction, "mode_review").trigger()
    assert win.mode_stack.currentIndex() == 0 and win.state.mode is Mode.REVIEW


def test_clicking_a_confusion_cell_shows_exactly_its_photos(panel: ResearchPanel, qtbot) -> None:
    table = panel.confusion.table
    for t, p in (_worst_confusion(panel), (3, 3), (4, 0)):
        rect = table.visualItemRect(table.item(t, p))
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        expect = panel.confusion.count(t, p)
        shown = panel.gallery.shown
        assert len(shown) == expect
        assert panel.gallery.list.count() == min(expect, 300)
        assert f"<b>{expect}</b> photo" in panel.gallery.count.text()
        ds, res = panel.session.dataset, panel.session.result
        assert np.all(ds.disease[shown] == t) and np.all(res.predicted()[shown] == p)
        codes = ds.taxonomy.head("disease").codes
        assert panel.gallery.combos["true"].currentText() == codes[t]  # the filter row follows the click
    # a further filter narrows the cell, never widens it
    panel.gallery.combos["has_mask"].setCurrentText("no")
    assert len(panel.gallery.shown) <= panel.confusion.count(4, 0)
    assert not panel.session.dataset.has_mask[panel.gallery.shown].any()


def test_the_inspector_opens_a_photo_and_one_click_opens_a_neighbour(panel: ResearchPanel, qtbot) -> None:
    panel.confusion.click(*_worst_confusion(panel))
    item = panel.gallery.list.item(0)
    qtbot.mouseClick(panel.gallery.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.gallery.list.visualItemRect(item).center())
    first = int(item.data(Qt.ItemDataRole.UserRole))
    qtbot.waitUntil(lambda: panel.inspector.current is not None, timeout=TIMEOUT)
    view = panel.inspector.current
    assert view.inspection.index == first
    assert view.cam_true is not None and view.cam_pred is not None  # an off-diagonal cell: two classes
    assert len(panel.inspector.neighbour_buttons) == 5
    assert first not in [n.index for n in view.inspection.neighbours]
    target = view.inspection.neighbours[0].index
    qtbot.mouseClick(panel.inspector.neighbour_buttons[0], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.inspector.current.inspection.index == target, timeout=TIMEOUT)
    assert panel.session.dataset.display_name(target) in panel.inspector.title.text()


def test_an_evaluation_runs_in_the_background_and_is_reopened_from_its_cache(panel: ResearchPanel, qtbot,
                                                                             tmp_path: Path) -> None:
    ten = export_manifest(open_manifest(SPEC, limit=10), range(10), tmp_path / "ten.csv")
    panel.open_path("manifest", ten)
    qtbot.waitUntil(lambda: panel.session.dataset is not None and len(panel.session.dataset) == 10, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "0 of 10 photos cached" in panel.eta.text(), timeout=TIMEOUT)
    assert panel.session.result is None
    panel.evaluate()
    assert panel.batch.running and panel.cancel_button.isVisibleTo(panel)
    qtbot.waitUntil(lambda: panel.session.result is not None, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not panel.batch.running, timeout=TIMEOUT)
    assert panel.session.result.done.all() and "10 / 10 photos" in panel.eta.text()
    assert not panel.cancel_button.isVisibleTo(panel)
    qtbot.waitUntil(lambda: panel.session.metrics.attributes is not None, timeout=TIMEOUT)  # deferred mAP
    # a bad file is a message, not a crash, and leaves the dataset shown
    messages: list[tuple[str, str]] = []
    panel.message.connect(lambda level, text: messages.append((level, text)))
    panel.open_path("manifest", tmp_path / "missing.yaml")
    qtbot.waitUntil(lambda: bool(messages), timeout=TIMEOUT)
    assert messages[0][0] == "error" and "missing.yaml" in messages[0][1]
    # reopening the same photos shows the cached evaluation without pressing Evaluate
    panel.open_path("manifest", ten)
    qtbot.waitUntil(lambda: "from the evaluation cache" in panel.eta.text(), timeout=TIMEOUT)
    assert panel.session.result is not None and panel.session.result.done.all()


def test_clicking_a_point_of_the_embedding_map_opens_that_photo(panel: ResearchPanel, qtbot) -> None:
    from PySide6.QtCore import QPoint

    panel.tabs.setCurrentWidget(panel.embedding)
    panel.compute_embedding_map("pca")
    qtbot.waitUntil(lambda: panel.embedding_xy is not None, timeout=TIMEOUT)
    plot = panel.embedding.plot
    plot.draw()
    target = 123
    x, y = plot.ax.transData.transform(panel.embedding_xy[target])
    ratio = plot.device_pixel_ratio or 1
    pos = QPoint(round(x / ratio), round(plot.height() - y / ratio))
    with qtbot.waitSignal(plot.picked, timeout=TIMEOUT) as picked:
        qtbot.mouseClick(plot, Qt.MouseButton.LeftButton, pos=pos)
    chosen = picked.args[0]
    assert np.hypot(*(panel.embedding_xy[chosen] - panel.embedding_xy[target])) < 0.05 * np.ptp(
        panel.embedding_xy[:, 0])  # the point under the cursor (or one drawn on top of it)
    qtbot.waitUntil(lambda: panel.inspector.current is not None and
                    panel.inspector.current.inspection.index == chosen, timeout=TIMEOUT)
