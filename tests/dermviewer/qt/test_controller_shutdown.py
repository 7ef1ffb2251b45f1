"""Closing the window while jobs run: every lane stops (between items for folder runs and sweeps), nothing
is delivered to the closed window afterwards, and nothing hangs or crashes."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtWidgets import QApplication

from dermviewer.state.cases import CaseStatus

TIMEOUT = 60_000
IMAGES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20" / "images"


def test_closing_with_a_folder_run_and_a_sweep_running_stops_both(make_window, qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in sorted(IMAGES.glob("*.jpg"))[:40]:
        shutil.copyfile(p, folder / p.name)
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    with qtbot.waitSignal(win.controller.case_shown, timeout=TIMEOUT):
        win.controller.open_paths([folder])
    with qtbot.waitSignal(win.controller.folder_progress, timeout=TIMEOUT,
                          check_params_cb=lambda done, _total: done >= 1):
        pass
    with qtbot.waitSignal(win.controller.sweep_progress, timeout=TIMEOUT):
        win.controller.run_sweep()
    assert win.controller.busy

    after: list[str] = []
    win.controller.folder_progress.connect(lambda *_a: after.append("folder"))
    win.controller.sweep_progress.connect(lambda *_a: after.append("sweep"))
    assert win.close()
    executor = win.controller.executor
    assert all(pool.activeThreadCount() == 0 for pool in executor.pools.values())
    for _ in range(5):
        QApplication.processEvents()
    assert after == []
    assert executor.active == 0
    assert not win.controller.busy
    pending = [c for c in win.state.cases.cases if c.status is CaseStatus.PENDING]
    assert pending  # the folder run really was stopped part-way, not waited out


def test_closing_while_the_model_is_still_loading_does_not_hang(make_window, qtbot, photo: Path) -> None:
    win = make_window(photo)
    assert not win.state.model.ready  # the load is running on the interactive lane
    assert win.close()
    executor = win.controller.executor
    assert all(pool.activeThreadCount() == 0 for pool in executor.pools.values())
    for _ in range(5):
        QApplication.processEvents()
    assert win.state.view is None  # the queued analysis never ran for the closed window
