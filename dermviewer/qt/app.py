"""Create the QApplication and the review window, open the model and the photos given on the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from dermviewer.qt.full_resolution import install_full_resolution
from dermviewer.qt.main_window import MainWindow
from dermviewer.qt.menus import build_menus, load_model_file
from dermviewer.qt.ui_gc import install_ui_garbage_collector
from dermviewer.state.app_state import AppState
from dermviewer.state.model import resolve_model_choice
from dermviewer.state.settings import Settings

__all__ = ["create_window", "run"]


def create_window(photos: Sequence[str | Path] = (), model: str | Path | None = None,
                  settings: Settings | None = None) -> MainWindow:
    """A ready window: menus installed, the model loading in a worker and the photos queued behind it.

    This is where the window and its menus meet: ``menus`` acts on a ``MainWindow``, and the window does
    not know its menus, so the imports run one way (app -> menus -> main_window's type only).
    ``model`` is a file or a bundled model's name (``"student"``); an unknown one raises ``BundleError``.
    A remembered model that has since disappeared falls back to the default bundle. Without ``settings``
    they are read from the user's file, and any problem with it is shown in the message bar.
    """
    import resources

    notes: list[str] = []
    if settings is None:
        settings, notes = Settings.load_with_messages()
    install_ui_garbage_collector()  # before any worker starts: cycles are collected on this thread only
    state = AppState(settings)
    model_path = resolve_model_choice(model) if model else state.settings.model_path
    if not model_path or not Path(model_path).exists():
        model_path = resources.default_model_path()
    win = MainWindow(state)
    win.actions_by_name = build_menus(win)
    install_full_resolution(win)  # a large JPEG's every pixel, only once the user zooms in
    for note in notes:  # an unreadable file was set aside, or a field reset to its default
        state.message.emit("warning", note)
    load_model_file(win, model_path)
    if photos:
        win.controller.open_paths([Path(p) for p in photos])
    return win


def run(photos: Sequence[str] = (), model: str | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DermViewer")
    app.setOrganizationName("DermViewer")
    app.setStyle("Fusion")
    win = create_window(photos, model)
    win.show()
    return int(app.exec())
