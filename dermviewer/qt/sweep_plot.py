"""Severity sweep plot: the clean top-1 class's probability against corruption severity, one line per
corruption, on matplotlib's Qt canvas (axes with units, ticks at the engine's levels, a legend).

The levels are the engine's severity table (Mishra et al. §2.3, ``engine.corrupt.registry``); level 0 is
the clean photo, so every line starts at the same point.
"""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy, QWidget

from dermviewer.state.sweep import SWEEP_CORRUPTIONS, SweepResult
from engine.corrupt import LEVELS

__all__ = ["LABELS", "SweepPlot"]

COLOURS = dict(zip(SWEEP_CORRUPTIONS, ("#c0392b", "#2874a6", "#7d3c98", "#d68910", "#1e8449"), strict=True))
LABELS = {"salt_and_pepper": "salt & pepper", "gaussian_blur": "Gaussian blur", "motion_blur": "motion blur",
          "jpeg": "JPEG", "brightness_contrast": "exposure"}
EMPTY_TITLE = "Severity sweep: press “Sweep severities”"
# A redraw costs 40-100 ms on the UI thread (constrained layout included) and a sweep yields 25 partial
# results: the partial ones are drawn at most this often, the last one and a clear at once.
PARTIAL_REDRAW_S = 0.5


class SweepPlot(FigureCanvasQTAgg):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.fig = Figure(figsize=(4.0, 2.8), dpi=90, layout="constrained")
        super().__init__(self.fig)
        self.setParent(parent)
        self.setObjectName("sweep_plot")
        self.setMinimumHeight(220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.result: SweepResult | None = None
        self.ax = self.fig.add_subplot()
        self.lines: dict[str, Line2D] = {}
        top = max(LEVELS)
        for name in SWEEP_CORRUPTIONS:
            (self.lines[name],) = self.ax.plot([], [], marker="o", markersize=3.5, linewidth=1.6,
                                               color=COLOURS[name], label=LABELS[name])
        self.ax.set_xlim(-0.2, top + 0.2)
        self.ax.set_xticks(range(top + 1))
        self.ax.set_ylim(0, 1.02)
        self.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        self.ax.set_xlabel("severity level (0 = clean photo, 5 = strongest)", fontsize=8)
        self.ax.set_ylabel("probability of clean top-1 class", fontsize=8)
        self.ax.tick_params(labelsize=7.5)
        self.ax.grid(True, color="#e5e5e5", linewidth=0.8)
        self.ax.legend(loc="lower left", fontsize=7, ncols=2, frameon=True, framealpha=0.85)
        self.ax.set_title(EMPTY_TITLE, fontsize=9)
        self.draws = 0  # canvas redraws so far (the sweep's partial results are throttled)
        self._last_draw = float("-inf")
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(self.draw_idle)

    def draw(self) -> None:
        self._pending.stop()
        self._last_draw = time.monotonic()
        self.draws += 1
        super().draw()

    def show_result(self, result: SweepResult | None) -> None:
        """Draw a (partial) sweep, or clear the plot with ``None``."""
        if result is None and self.result is None:
            return  # already empty: a matplotlib redraw costs tens of ms, don't pay it on every photo
        self.result = result
        for name, line in self.lines.items():
            levels, probs = result.series(name) if result is not None else ([], [])
            line.set_data(levels, probs)
        self.ax.set_title(f"P({result.target_name}) under each corruption" if result else EMPTY_TITLE, fontsize=9)
        wait = self._last_draw + PARTIAL_REDRAW_S - time.monotonic()
        if result is None or result.complete or wait <= 0:
            self._pending.stop()
            self.draw_idle()
        elif not self._pending.isActive():  # the data is set; the picture follows within PARTIAL_REDRAW_S
            self._pending.start(int(wait * 1000) + 1)

    def clear_result(self) -> None:
        self.show_result(None)
