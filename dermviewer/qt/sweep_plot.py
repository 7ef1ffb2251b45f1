"""Severity sweep plot: the clean top-1 class's probability against corruption severity, one line per
corruption, on matplotlib's Qt canvas (axes with units, ticks at the engine's levels, a legend).

The levels are the engine's severity table (Mishra et al. §2.3, ``engine.corrupt.registry``); level 0 is
the clean photo, so every line starts at the same point.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter
from PySide6.QtWidgets import QSizePolicy, QWidget

from dermviewer.qt.plot_throttle import PARTIAL_REDRAW_S, ThrottledRedraw
from dermviewer.state.sweep import SWEEP_CORRUPTIONS, SweepResult
from engine.corrupt import LEVELS

__all__ = ["LABELS", "PARTIAL_REDRAW_S", "SweepPlot"]

COLOURS = dict(zip(SWEEP_CORRUPTIONS, ("#c0392b", "#2874a6", "#7d3c98", "#d68910", "#1e8449"), strict=True))
LABELS = {"salt_and_pepper": "salt & pepper", "gaussian_blur": "Gaussian blur", "motion_blur": "motion blur",
          "jpeg": "JPEG", "brightness_contrast": "exposure"}
EMPTY_TITLE = "Severity sweep: press “Sweep severities”"


class SweepPlot(ThrottledRedraw, FigureCanvasQTAgg):
    """Fixed margins rather than constrained layout (a redraw costs about a third less, measured), and the
    sweep's partial results redrawn at most every ``PARTIAL_REDRAW_S`` (:mod:`dermviewer.qt.plot_throttle`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.fig = Figure(figsize=(4.0, 2.8), dpi=90)
        self.fig.subplots_adjust(left=0.15, right=0.97, top=0.9, bottom=0.16)
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
        self.init_throttle()

    def show_result(self, result: SweepResult | None) -> None:
        """Draw a (partial) sweep, or clear the plot with ``None``."""
        if result is None and self.result is None:
            return  # already empty: a matplotlib redraw costs tens of ms, don't pay it on every photo
        self.result = result
        for name, line in self.lines.items():
            levels, probs = result.series(name) if result is not None else ([], [])
            line.set_data(levels, probs)
        self.ax.set_title(f"P({result.target_name}) under each corruption" if result else EMPTY_TITLE, fontsize=9)
        self.request_redraw(final=result is None or result.complete)  # the data is set at once

    def clear_result(self) -> None:
        self.show_result(None)
