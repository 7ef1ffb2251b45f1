"""Python's cyclic garbage collector, run on the UI thread only.

Automatic collection starts in whichever thread happens to cross the allocation threshold, and here the
threads that allocate most are the workers: torch inference, Grad-CAM, the explainer's imports. A cycle
that holds a Qt wrapper (a lambda slot, a widget's Python subclass, a worker's signal object) collected on
such a thread would delete or unregister a Qt object from the wrong thread while the UI thread paints or
tears widgets down. (One of the measures taken against the suite's segfaults in shiboken's
``BindingManager``; on its own it did not stop them, see ``dermviewer.qt.workers``.)
pyqtgraph ships the same remedy (``pyqtgraph.util.garbage_collector``): automatic collection off, and a
timer on the UI thread that collects whenever the counts pass the thresholds Python would have used.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

__all__ = ["UiGarbageCollector", "install_ui_garbage_collector"]

INTERVAL_MS = 500


class UiGarbageCollector(QObject):
    """Turns automatic collection off while it lives; collects on the UI thread every ``interval_ms``."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def check(self) -> int:
        """Collect the oldest generation whose count passed its threshold; the number of objects freed."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for gen in (2, 1, 0):
            if counts[gen] > thresholds[gen] > 0:
                return gc.collect(gen)
        return 0

    def stop(self) -> None:
        """Back to automatic collection (as it was before), after one full collection here."""
        self._timer.stop()
        self.setObjectName("")  # the next install_ui_garbage_collector() starts a new one
        gc.collect()
        if self._was_enabled:
            gc.enable()


def install_ui_garbage_collector(app: QCoreApplication | None = None) -> UiGarbageCollector:
    """The application's collector, created on first call (a child of ``app``, so it lives as long)."""
    app = app or QCoreApplication.instance()
    if app is None:
        raise RuntimeError("install_ui_garbage_collector needs a QApplication")
    existing = app.findChild(UiGarbageCollector, "dermviewer_ui_gc")
    if existing is not None:
        return existing
    collector = UiGarbageCollector(app)
    collector.setObjectName("dermviewer_ui_gc")
    return collector
