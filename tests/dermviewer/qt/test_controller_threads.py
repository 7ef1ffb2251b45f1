"""The app's thread budget: lanes that run model forwards must not each take every core (two torch pools at
the full count on two cores turned a 27 ms prediction into seconds). torch and OpenCV get the budget's
count once, ONNX Runtime sessions an explicit one, and no more jobs compute at once than the budget allows,
with the user's photo first."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from dermviewer.state.executor import ThreadBudget, available_cores

TIMEOUT = 60_000
IMAGES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20" / "images"


def test_available_cores_respects_an_explicit_omp_num_threads(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4096")
    assert available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert available_cores() == len(os.sched_getaffinity(0))


def test_budget_never_asks_for_more_threads_than_cores() -> None:
    for cores in (1, 2, 3, 4, 6, 8, 16, 64):
        b = ThreadBudget.for_machine(cores)
        assert b.torch_threads >= 1 and b.slots >= 1
        assert b.torch_threads * b.slots <= cores
        assert b.ort_threads == b.torch_threads


def test_window_sets_torch_threads_from_the_budget(make_window, qtbot) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2 * available_cores())  # what OpenMP picks with hyper-threads, say
    try:
        win = make_window()
        qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
        budget = win.controller.budget
        assert budget == ThreadBudget.for_machine()
        assert torch.get_num_threads() == budget.torch_threads
    finally:
        torch.set_num_threads(before)


def test_onnx_sessions_get_an_explicit_thread_count(make_window, qtbot) -> None:
    win = make_window()
    # ready is set by the loading job; model_path by its result, on the UI thread a moment later
    qtbot.waitUntil(lambda: win.state.model.ready and win.state.settings.model_path is not None, timeout=TIMEOUT)
    win.state.settings.backend = "onnx"
    from dermviewer.qt.menus import load_model_file

    with qtbot.waitSignal(win.controller.model_loaded, timeout=TIMEOUT):
        load_model_file(win, win.state.settings.model_path)
    assert win.state.model.predictor.backend_name == "onnx"
    session = win.state.model.predictor.backend.session
    threads = session.get_session_options().intra_op_num_threads
    assert threads == win.controller.budget.ort_threads  # 0 would mean "every core", for each session


def test_folder_run_photo_and_gradcam_never_compute_beyond_the_budget(make_window, qtbot, photo: Path,
                                                                       tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in sorted(IMAGES.glob("*.jpg"))[:16]:
        shutil.copyfile(p, folder / p.name)
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    slots = win.controller.executor.slots
    with qtbot.waitSignal(win.controller.folder_progress, timeout=TIMEOUT,
                          check_params_cb=lambda done, _total: done >= 1):
        win.controller.open_paths([folder])
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):  # opened while the folder runs
        win.controller.open_paths([photo])
    with qtbot.waitSignal(win.controller.gradcam_shown, timeout=TIMEOUT):
        win.controller.request_gradcam("disease", 0)
    with qtbot.waitSignal(win.controller.folder_finished, timeout=TIMEOUT):
        pass
    assert slots.peak == win.controller.budget.slots
    assert all(n == 0 for n in slots.held.values())
