"""Model ▸ Bundled models: one checkable entry per shipped bundle, checked for the model actually loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

import resources
from dermviewer.qt.menus import load_model_file

TIMEOUT = 30_000


def test_bundled_model_entry_loads_that_bundle_and_tracks_the_loaded_model(
        make_window, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    menu = win.findChild(QMenu, "bundled_models_menu")
    assert menu is not None
    default = win.actions_by_name["bundled_model_default"]
    assert default in menu.actions()
    assert win.findChild(QAction, "bundled_model_default") is default
    assert default.text().startswith("Default — ")
    assert default.isCheckable()
    assert default.actionGroup() is not None and default.actionGroup().isExclusive()
    assert default.isChecked()  # the window opened the default bundle

    # another file loaded: no bundled entry is checked
    copy = tmp_path / "copy.dmvb"
    shutil.copyfile(resources.default_model_path(), copy)
    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        load_model_file(win, copy)
    assert not any(a.isChecked() for a in menu.actions())

    calls: list[Path] = []
    load_model = win.controller.load_model

    def spy(path):
        calls.append(path)
        load_model(path)

    monkeypatch.setattr(win.controller, "load_model", spy)
    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        default.trigger()
        assert calls == [resources.default_model_path()]
        assert not default.isChecked()  # checked once the model has loaded, not on the click
    assert default.isChecked()
    assert Path(win.state.model.info.path).resolve() == resources.default_model_path().resolve()
