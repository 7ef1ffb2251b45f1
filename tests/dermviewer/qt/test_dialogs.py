"""Preferences (validated, persisted, applied) and model information (read from the loaded bundle), plus
what the window says about a settings file it could not read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from dermviewer.qt.app import create_window
from dermviewer.qt.menus import load_model_file, show_model_info, show_preferences
from dermviewer.state.model import shipped_models
from dermviewer.state.settings import BACKENDS, DEVICES, Settings, settings_path
from engine.bundle import read_bundle_header

TIMEOUT = 30_000


def _ready(qtbot, make_window):
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    return win


def _click(qtbot, dlg, button: QDialogButtonBox.StandardButton) -> None:
    qtbot.mouseClick(dlg.buttons.button(button), Qt.MouseButton.LeftButton)


def test_preferences_refuse_a_device_the_machine_lacks_and_persist_a_valid_choice(make_window, qtbot) -> None:
    win = _ready(qtbot, make_window)
    first = win.state.model.info
    assert first is not None and first.backend == "onnx"  # the default
    dlg = show_preferences(win)
    assert dlg.isVisible()  # opened, not exec'ed: the app keeps running
    assert [dlg.device.itemText(i) for i in range(dlg.device.count())] == list(DEVICES)
    assert [dlg.backend.itemText(i) for i in range(dlg.backend.count())] == list(BACKENDS)

    if not torch.cuda.is_available():
        dlg.device.setCurrentText("cuda")
        _click(qtbot, dlg, QDialogButtonBox.StandardButton.Ok)
        assert dlg.isVisible() and dlg.error.isVisibleTo(dlg)
        assert "no CUDA GPU is available" in dlg.error.text()
        assert win.state.settings.device == "cpu" and not settings_path().exists()  # nothing taken, nothing saved

    dlg.device.setCurrentText("cpu")
    dlg.backend.setCurrentText("torch")
    _click(qtbot, dlg, QDialogButtonBox.StandardButton.Ok)
    assert not dlg.isVisible()
    on_disk = Settings.load_with_messages(settings_path())
    assert on_disk[1] == [] and (on_disk[0].device, on_disk[0].backend) == ("cpu", "torch")
    qtbot.waitUntil(lambda: win.state.model.info is not first, timeout=TIMEOUT)  # reloaded on the new backend
    info = win.state.model.info
    assert info.backend == "torch" and Path(info.path).resolve() == Path(first.path).resolve()


def test_cancelled_preferences_change_nothing(make_window, qtbot) -> None:
    win = _ready(qtbot, make_window)
    first = win.state.model.info
    dlg = show_preferences(win)
    dlg.backend.setCurrentText("torch")
    _click(qtbot, dlg, QDialogButtonBox.StandardButton.Cancel)
    assert not dlg.isVisible()
    assert win.state.settings.backend == "onnx" and not settings_path().exists()
    assert win.state.model.info is first


def _metric_texts(metrics: dict) -> list[str]:
    """How a fraction reads in the dialog, computed here from the bundle's header, not by the app's code."""
    return [f"{100 * v:.1f}%" for v in metrics.values() if isinstance(v, float) and 0 <= v <= 1]


@pytest.mark.parametrize("stem", ["default", "student"])
def test_model_info_shows_the_loaded_bundles_name_checksum_and_metrics(make_window, qtbot, stem: str) -> None:
    win = _ready(qtbot, make_window)
    path = next(m.path for m in shipped_models() if m.stem == stem)
    if Path(win.state.model.info.path).resolve() != path.resolve():
        first = win.state.model.info
        load_model_file(win, path)
        qtbot.waitUntil(lambda: win.state.model.info is not first, timeout=TIMEOUT)
    header = read_bundle_header(path)
    dlg = show_model_info(win)
    assert dlg is not None and dlg.isVisible()
    text, title = dlg.browser.toPlainText(), dlg.windowTitle()
    dlg.close()
    assert header.name in text and f"v{header.version}" in title
    assert hashlib.sha256(path.read_bytes()).hexdigest() in text
    figures = _metric_texts(header.metrics)
    assert figures and all(f in text for f in figures)
    for other in shipped_models():  # and not another bundle's
        if other.stem != stem and other.name != header.name:
            assert hashlib.sha256(other.path.read_bytes()).hexdigest() not in text


def test_model_info_before_a_model_is_loaded_warns(make_window, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    win = _ready(qtbot, make_window)
    monkeypatch.setattr(win.state.model, "info", None)
    assert show_model_info(win) is None
    assert win.messages.history[-1] == ("warning", "No model is loaded yet.")


def test_the_window_says_it_set_an_unreadable_settings_file_aside(qapp: QApplication, qtbot) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"device": "cpu", "top_k": 3')  # truncated mid-write
    win = create_window()
    try:
        warnings = [t for lvl, t in win.messages.history if lvl == "warning"]
        kept = list(path.parent.glob("settings.json.bad-*"))
        assert len(kept) == 1 and kept[0].read_bytes() == b'{"device": "cpu", "top_k": 3'
        assert any(str(path) in t and kept[0].name in t for t in warnings)
        assert win.messages.isVisibleTo(win)
        qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    finally:
        win.close()
        win.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert json.loads(path.read_text(encoding="utf-8"))["device"] == "auto"  # fresh settings written on close
    assert kept[0].read_bytes() == b'{"device": "cpu", "top_k": 3'  # ... and the unreadable file left alone
