"""Start-up on ONNX Runtime (issue 14): the first differential needs no torch; the Grad-CAM control says
"loading…" and is disabled while torch loads in the background, and Grad-CAM works once it has loaded.

The background load is held at a gate here, so "still loading" is a state of the test, not a race."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dermviewer.qt.overlay_bar import GRADCAM_LOADING
from dermviewer.state.model import ModelHost

TIMEOUT = 120_000


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """ModelHost.load_explainer waits for this event before doing its work."""
    opened = threading.Event()
    original = ModelHost.load_explainer

    def held(self: ModelHost):
        assert opened.wait(TIMEOUT / 1000), "the test never opened the gate"
        return original(self)

    monkeypatch.setattr(ModelHost, "load_explainer", held)
    return opened


def test_gradcam_control_is_disabled_while_torch_loads_and_works_afterwards(make_window, qtbot, photo: Path,
                                                                             gate: threading.Event) -> None:
    win = make_window()
    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        pass
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([photo])
    host, bar = win.state.model, win.overlay_bar
    assert host.predictor.backend_name == "onnx"  # the default settings' backend
    assert win.state.view is not None and win.state.view.prediction.differential  # the differential is there
    assert not host.explainer_ready
    assert bar.gradcam.text() == GRADCAM_LOADING
    assert not bar.gradcam.isEnabled()
    assert "loading" in bar.gradcam.toolTip()

    disease = host.predictor.bundle.taxonomy.head("disease")
    top = win.state.view.prediction.differential[0]
    index = [c.code for c in disease.classes].index(top.code)
    win.controller.request_gradcam("disease", index)  # asked for while loading: it waits, nothing fails
    qtbot.wait(300)
    assert win.state.gradcam is None and bar.gradcam.text() == GRADCAM_LOADING

    with qtbot.waitSignal(win.controller.gradcam_shown, timeout=TIMEOUT):
        gate.set()
    assert host.explainer_ready
    assert win.state.gradcam is not None and win.state.gradcam.values is not None
    assert bar.gradcam.isEnabled()
    assert bar.gradcam.text() == f"Grad-CAM: {top.name}"
    assert "gradcam" in win.canvas.overlay_kinds()
    bar.gradcam.setChecked(False)
    assert "gradcam" not in win.canvas.overlay_kinds()


def test_with_the_torch_backend_gradcam_is_never_loading(make_window, qtbot, photo: Path, qapp) -> None:
    from dermviewer.qt.app import create_window
    from dermviewer.state.settings import Settings

    win = create_window([photo], settings=Settings(device="cpu", backend="torch"))
    try:
        win.show()
        qtbot.waitUntil(lambda: win.state.view is not None, timeout=TIMEOUT)
        assert win.state.model.predictor.backend_name == "torch"
        assert win.state.model.explainer_ready
        assert win.overlay_bar.gradcam.text() != GRADCAM_LOADING
    finally:
        win.close()
        win.deleteLater()


def test_a_failed_background_load_says_so_instead_of_loading_forever(make_window, qtbot, photo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ModelHost):
        raise RuntimeError("torch is not installed")

    monkeypatch.setattr(ModelHost, "load_explainer", broken)
    win = make_window(photo)
    qtbot.waitUntil(lambda: win.state.model.explainer_error is not None, timeout=TIMEOUT)
    bar = win.overlay_bar
    assert bar.gradcam.text() == "Grad-CAM" and not bar.gradcam.isEnabled()
    assert "torch is not installed" in bar.gradcam.toolTip()
    assert any("Grad-CAM is unavailable" in text for _lvl, text in win.messages.history)
