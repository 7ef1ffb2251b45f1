"""The research robustness curves under a running sweep: partial points replotted at most every
PARTIAL_REDRAW_S, always the latest ones, and the final points drawn at once (issue 16's stall figures:
every partial point used to clear and replot both axes on the UI thread)."""

from __future__ import annotations

import time

import numpy as np

from dermviewer.qt.plot_throttle import PARTIAL_REDRAW_S
from dermviewer.qt.research.robustness_view import SweepCurves
from dermviewer.state.research.robustness import SweepPoint


def _points(n: int) -> list[SweepPoint]:
    names = ("salt_and_pepper", "gaussian_blur")
    return [SweepPoint(names[i // 5], i % 5 + 1, 6, 0.5 - 0.02 * i, 0.45 - 0.02 * i, 0.05 * (i % 5), np.eye(2))
            for i in range(n)]


def test_partial_points_share_redraws_and_the_final_ones_are_drawn_at_once(qtbot) -> None:
    curves = SweepCurves()
    qtbot.addWidget(curves)
    curves.resize(600, 320)
    curves.show()
    qtbot.waitUntil(lambda: curves.draws >= 1)
    start, t0 = curves.draws, time.monotonic()
    for n in range(1, 10):  # nine partial results, each with the event loop turning
        curves.show_points(_points(n), 0.6, 0.55, final=False)
        qtbot.wait(5)
    allowed = 1 + (time.monotonic() - t0) / PARTIAL_REDRAW_S  # at most one redraw per interval (9 unthrottled)
    assert curves.draws - start <= allowed
    qtbot.waitUntil(lambda: len(curves.acc.lines) == 2 * 2, timeout=int(PARTIAL_REDRAW_S * 1000) + 500)
    assert len(curves.acc.lines[0].get_xdata()) + len(curves.acc.lines[2].get_xdata()) == 9 + 2  # the latest
    curves.show_points(_points(10), 0.6, 0.55, final=True)
    assert [len(line.get_xdata()) for line in curves.flip.lines] == [6, 6]  # replotted at once, clean point first
    before = curves.draws
    qtbot.waitUntil(lambda: curves.draws > before, timeout=200)
