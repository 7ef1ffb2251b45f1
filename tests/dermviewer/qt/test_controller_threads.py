"""The app's thread budget: lanes that can run model forwards at the same time must not each take every core
(two torch pools at the full count on two cores turned a 27 ms prediction into seconds)."""

from __future__ import annotations

import os

import torch

TIMEOUT = 60_000


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_window_budgets_torch_threads_for_two_concurrent_lanes(make_window, qtbot) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(_cores())  # what torch picks on its own when OMP_NUM_THREADS is not set
    try:
        win = make_window()
        qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
        assert torch.get_num_threads() == max(1, _cores() // 2)
        assert 2 * torch.get_num_threads() <= max(2, _cores())
    finally:
        torch.set_num_threads(before)


def test_onnx_sessions_get_an_explicit_thread_count(make_window, qtbot) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    win.state.settings.backend = "onnx"
    from dermviewer.qt.menus import load_model_file

    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        load_model_file(win, win.state.settings.model_path)
    assert win.state.model.predictor.backend_name == "onnx"
    session = win.state.model.predictor.backend.session
    threads = session.get_session_options().intra_op_num_threads
    assert threads == max(1, _cores() // 2)  # 0 would mean "every core", for each session
