"""A matplotlib figure on Qt's canvas with the panel's readable defaults (font sizes, constrained layout),
and PNG/SVG export of any plot."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtWidgets import QSizePolicy, QWidget

__all__ = ["CLASS_COLOURS", "PlotCanvas"]

CLASS_COLOURS = ("#1f77b4", "#d62728", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")


class PlotCanvas(FigureCanvasQTAgg):
    """Fixed margins rather than constrained layout: a redraw costs half as much (it runs on the UI thread,
    at every resize), and the panel's plots have one known shape each."""

    def __init__(self, name: str, width: float = 4.2, height: float = 3.0, parent: QWidget | None = None,
                 margins: tuple[float, float, float, float] = (0.11, 0.97, 0.89, 0.15)) -> None:
        self.fig = Figure(figsize=(width, height), dpi=90)
        left, right, top, bottom = margins
        self.fig.subplots_adjust(left=left, right=right, top=top, bottom=bottom, wspace=0.3)
        super().__init__(self.fig)
        self.setParent(parent)
        self.setObjectName(name)
        self.setMinimumHeight(200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @staticmethod
    def style(ax: Axes) -> None:
        """Readable at the panel's size: 8-10 pt text, a light grid (matplotlib has no per-figure rc)."""
        ax.tick_params(labelsize=8)
        ax.title.set_fontsize(10)
        ax.xaxis.label.set_fontsize(9)
        ax.yaxis.label.set_fontsize(9)
        ax.grid(True, alpha=0.3, linewidth=0.6)

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        fmt = "svg" if out.suffix.lower() == ".svg" else "png"
        self.fig.savefig(out, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight")
        return out
