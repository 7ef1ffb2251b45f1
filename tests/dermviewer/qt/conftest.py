"""Qt fixtures: offscreen platform (set before Qt is imported) and a window factory that fails on leaks."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication

from dermviewer.qt.app import create_window
from dermviewer.qt.main_window import MainWindow
from dermviewer.qt.ui_gc import UiGarbageCollector
from dermviewer.state.settings import Settings


@pytest.fixture(autouse=True)
def _ui_gc_back_to_automatic(qapp: QApplication) -> Iterator[None]:
    """A window turns automatic garbage collection off (dermviewer.qt.ui_gc); after each test, once its
    windows are gone, collect here and turn it back on, so tests without an event loop still collect."""
    yield
    for collector in qapp.findChildren(UiGarbageCollector):
        collector.stop()
        collector.deleteLater()


def _top_level_names() -> set[str]:
    return {f"{type(w).__name__}:{id(w)}" for w in QApplication.topLevelWidgets()}


@pytest.fixture
def make_window(qapp: QApplication, qtbot) -> Iterator[Callable[..., MainWindow]]:
    """Windows on the placeholder bundle with fresh settings; the test fails if any top-level widget
    outlives them (a dialog or popup left behind leaks memory and, for modal ones, blocks the user)."""
    before = _top_level_names()
    windows: list[MainWindow] = []

    def make(*photos: Path) -> MainWindow:
        win = create_window(photos, settings=Settings(device="cpu"))
        windows.append(win)
        win.show()
        return win

    yield make
    for win in windows:
        win.close()
        win.deleteLater()
    windows.clear()
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        qapp.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if f"{type(w).__name__}:{id(w)}" not in before]
    assert not leaked, f"top-level widgets leaked: {leaked}"
