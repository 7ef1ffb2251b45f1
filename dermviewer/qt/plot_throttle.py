"""Redraw throttling for matplotlib canvases fed by a long job's partial results.

A matplotlib redraw runs on the UI thread and costs 40-300 ms here (more on a loaded machine); a sweep
yields 10-25 partial results, and redrawing each one stalled the event loop every step (issue 16's
figures). Partial results are drawn at most every ``PARTIAL_REDRAW_S``, always the latest, and a final
one (or a clear) at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QTimer

__all__ = ["PARTIAL_REDRAW_S", "ThrottledRedraw"]

PARTIAL_REDRAW_S = 0.5


class ThrottledRedraw:
    """Mixin for a ``FigureCanvasQTAgg`` subclass: call :meth:`init_throttle` after the canvas is built, then
    :meth:`request_redraw` instead of ``draw_idle``. ``draws`` counts the canvas's redraws."""

    def init_throttle(self) -> None:
        self.draws = 0
        self._last_draw = float("-inf")
        self._render: Callable[[], None] | None = None
        self._pending = QTimer(self)  # type: ignore[arg-type]
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(self._flush)

    def draw(self) -> None:
        self._last_draw = time.monotonic()
        self.draws += 1
        super().draw()  # type: ignore[misc]

    def request_redraw(self, final: bool, render: Callable[[], None] | None = None) -> None:
        """Redraw now if ``final`` or the last redraw is old enough, else within ``PARTIAL_REDRAW_S``;
        ``render`` (rebuilding the artists) runs just before, and only the latest one given."""
        self._render = render
        wait = self._last_draw + PARTIAL_REDRAW_S - time.monotonic()
        if final or wait <= 0:
            self._pending.stop()
            self._flush()
        elif not self._pending.isActive():
            self._pending.start(int(wait * 1000) + 1)

    def _flush(self) -> None:
        render, self._render = self._render, None
        if render is not None:
            render()
        self.draw_idle()  # type: ignore[attr-defined]
