"""The model's attention on the annotate canvas, in the real window on the loaded default model and real photos:
Ctrl+L draws the LSM map and the LSM-selected tokens, computed on the window's job runner (not the UI thread),
equal to what engine.explain computes directly from that model's prediction of that photo; toggling again
hides it. Then, with a job runner the test steps by hand: moving on drops the pending job of the photo left,
a result delivered for a photo no longer shown is never drawn (it is kept and drawn, with no new job, once
that photo is shown again)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtGui import QAction

from dermviewer.qt.annotate import AnnotatePanel
from dermviewer.state.executor import Lane, ManualExecutor
from dermviewer.state.tracked_jobs import TrackedJobs
from engine.explain import lsm_map, overlay, selected_boxes
from tests.dermviewer.qt.test_annotate_panel import press
from tests.dermviewer.state.test_annotate_store import small_manifest


def _display(size: tuple[int, int], longest: int = 768) -> tuple[int, int]:
    """The resolution dermviewer.state.overlays colours maps at (a map has no detail beyond it)."""
    h, w = size
    s = min(1.0, longest / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def test_the_overlay_is_the_engines_attention_for_the_photo_and_never_a_stale_one(
        make_window, qtbot, tmp_path: Path, monkeypatch) -> None:
    win = make_window()
    win.findChild(QAction, "mode_annotate").trigger()
    panel = win.annotate_panel
    assert isinstance(panel, AnnotatePanel)
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=120_000)
    panel.new_project(small_manifest(tmp_path / "src", n=4), tmp_path / "p.dvproj")
    s = panel.session
    assert s is not None and panel.canvas.model_rgba is None
    predictor = win.state.model.predictor
    predict = predictor.predict
    threads: list[threading.Thread] = []

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return predict(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict", recording)
    before = panel.canvas.grab().toImage()
    press(qtbot, panel, "Ctrl+L")
    assert panel.overlay_button.isChecked()
    qtbot.waitUntil(lambda: panel.canvas.model_rgba is not None, timeout=120_000)
    assert threads and threading.main_thread() not in threads  # computed on the job runner

    pred = predict(s.current.path)  # the engine, directly: this model, this photo
    want = lsm_map(pred, head="disease")
    shown = panel.model_overlay.shown(s.current.key)
    assert shown is not None and shown.key == s.photos[0].key
    np.testing.assert_array_equal(shown.layers[0].values, want)
    size = pred.image_size
    assert panel.canvas._size == size
    ref = overlay(np.zeros((*_display(size), 3), np.uint8), want, win.state.overlays.colormap, alpha=1.0,
                  alpha_from_map=True)
    np.testing.assert_array_equal(panel.canvas.model_rgba, ref)  # the array the canvas draws
    boxes = [(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
             for x0, y0, x1, y1 in selected_boxes(pred.selected["disease"], pred.grid_size, size)]
    assert list(panel.canvas.model_boxes) == boxes and boxes
    drawn = panel.canvas.grab().toImage()
    assert drawn != before  # and it is on screen
    press(qtbot, panel, "Ctrl+L")
    assert panel.canvas.model_rgba is None and not panel.overlay_button.isChecked()
    assert panel.canvas.grab().toImage() == before

    manual = ManualExecutor()  # from here the test decides when a job runs and when its result arrives
    monkeypatch.setattr(panel, "jobs", TrackedJobs(manual))
    press(qtbot, panel, "Ctrl+L")
    np.testing.assert_array_equal(panel.canvas.model_rgba, ref)  # photo 0's is known: drawn with no new job
    assert not manual.pending()
    press(qtbot, panel, "Right")
    assert panel.canvas.model_rgba is None  # photo 0's is not drawn over photo 1
    first = manual.pending()
    assert len(first) == 1 and first[0].lane in (Lane.EXPLAIN, Lane.INTERACTIVE)
    press(qtbot, panel, "Right")
    assert first[0].cancelled  # photo 1 is no longer shown: its job is dropped, not run
    assert len(manual.pending()) == 1  # photo 2's
    late = first[0].job()  # yet suppose photo 1's result was already on its way: it arrives now
    first[0].on_result(late)
    assert s.index == 2 and panel.canvas.model_rgba is None  # never drawn over photo 2
    assert panel.model_overlay.shown(s.photos[1].key) is late  # kept for its photo
    manual.run_pending()
    photo2 = panel.model_overlay.shown(s.photos[2].key)
    assert photo2 is not None and panel.canvas.model_rgba is not None
    np.testing.assert_array_equal(photo2.layers[0].values, lsm_map(predict(s.photos[2].path), head="disease"))
    press(qtbot, panel, "Left")  # back to photo 1: its kept result is drawn, no new job
    assert not manual.pending()
    np.testing.assert_array_equal(
        panel.canvas.model_rgba, overlay(np.zeros((*_display(late.image_size), 3), np.uint8),
                                         late.layers[0].values, win.state.overlays.colormap, 1.0, alpha_from_map=True))
    panel.close_project()
