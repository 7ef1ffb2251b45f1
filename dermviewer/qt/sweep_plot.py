"""Top-1 probability vs severity, one curve per corruption (pyqtgraph: fast, Qt-native, no QtCharts)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from dermviewer.state.sweep import SWEEP_CORRUPTIONS, SweepResult

__all__ = ["SweepPlot"]

COLOURS = ("#c0392b", "#2874a6", "#7d3c98", "#d68910", "#1e8449")


class SweepPlot(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setObjectName("sweep_plot")
        self.setMinimumHeight(160)
        self.setLabel("bottom", "severity level (0 = clean)")
        self.setLabel("left", "P(top-1)")
        self.setYRange(0, 1)
        self.setXRange(0, 5)
        self.showGrid(x=True, y=True, alpha=0.3)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.legend = self.addLegend(offset=(-5, 5), labelTextSize="7pt")
        self.curves = {
            name: self.plot([], [], pen=pg.mkPen(c, width=2), symbol="o", symbolSize=5, symbolBrush=c, name=name)
            for name, c in zip(SWEEP_CORRUPTIONS, COLOURS, strict=True)
        }
        self.setTitle("Sweep: press “Sweep severities”", size="8pt")

    def show_result(self, result: SweepResult) -> None:
        self.setTitle(f"P({result.target_name}) vs severity", size="8pt")
        for name, curve in self.curves.items():
            x, y = result.series(name)
            curve.setData(x, y)
