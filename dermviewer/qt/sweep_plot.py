"""Top-1 probability vs severity, one curve per corruption, drawn with QPainter.

Six points per curve do not need a plotting library; pyqtgraph was tried and leaves parentless option
menus behind (and crashes if they are freed before the plot), which the leak-checking tests refuse.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from dermviewer.state.sweep import SWEEP_CORRUPTIONS, SweepResult

__all__ = ["SweepPlot"]

COLOURS = dict(zip(SWEEP_CORRUPTIONS, ("#c0392b", "#2874a6", "#7d3c98", "#d68910", "#1e8449"), strict=True))
LABELS = {"salt_and_pepper": "salt & pepper", "gaussian_blur": "Gaussian blur", "motion_blur": "motion blur",
          "jpeg": "JPEG", "brightness_contrast": "exposure"}
MAX_LEVEL = 5


class SweepPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweep_plot")
        self.setMinimumHeight(190)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.result: SweepResult | None = None

    def show_result(self, result: SweepResult) -> None:
        self.result = result
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        small = QFont(self.font())
        small.setPointSizeF(max(6.5, small.pointSizeF() - 1.5))
        p.setFont(small)
        fm = p.fontMetrics()
        title = (f"P({self.result.target_name}) vs severity" if self.result
                 else "Sweep: press “Sweep severities”")
        p.setPen(QColor(40, 40, 40))
        p.drawText(QRectF(0, 2, self.width(), fm.height()), Qt.AlignmentFlag.AlignHCenter, title)
        plot = QRectF(36, fm.height() + 8, self.width() - 36 - 104, self.height() - fm.height() * 3 - 14)
        if plot.width() < 40 or plot.height() < 40:
            p.end()
            return

        def at(level: float, prob: float) -> QPointF:
            return QPointF(plot.left() + plot.width() * level / MAX_LEVEL, plot.bottom() - plot.height() * prob)

        grid = QPen(QColor(225, 225, 225))
        for i in range(6):  # y grid 0..1 by 0.2
            y = i / 5
            p.setPen(grid)
            p.drawLine(at(0, y), at(MAX_LEVEL, y))
            p.setPen(QColor(90, 90, 90))
            p.drawText(QRectF(0, at(0, y).y() - fm.height() / 2, 32, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{y:.1f}")
        for lvl in range(MAX_LEVEL + 1):
            p.drawText(QRectF(at(lvl, 0).x() - 10, plot.bottom() + 2, 20, fm.height()),
                       Qt.AlignmentFlag.AlignHCenter, str(lvl))
        p.drawText(QRectF(plot.left(), plot.bottom() + fm.height() + 2, plot.width(), fm.height()),
                   Qt.AlignmentFlag.AlignHCenter, "severity level (0 = clean)")
        p.setPen(QPen(QColor(120, 120, 120)))
        p.drawRect(plot)
        for row, name in enumerate(SWEEP_CORRUPTIONS):
            colour = QColor(COLOURS[name])
            ly = plot.top() + 4 + row * (fm.height() + 2)
            p.setPen(QPen(colour, 2))
            mid = ly + fm.height() / 2
            p.drawLine(QPointF(plot.right() + 8, mid), QPointF(plot.right() + 22, mid))
            p.setPen(QColor(50, 50, 50))
            p.drawText(QRectF(plot.right() + 26, ly, 80, fm.height()), Qt.AlignmentFlag.AlignVCenter, LABELS[name])
            if self.result is None:
                continue
            levels, probs = self.result.series(name)
            pts = [at(lv, pr) for lv, pr in zip(levels, probs, strict=True)]
            p.setPen(QPen(colour, 2))
            for a, b in itertools.pairwise(pts):
                p.drawLine(a, b)
            p.setBrush(colour)
            for pt in pts:
                p.drawEllipse(pt, 2.5, 2.5)
            p.setBrush(Qt.BrushStyle.NoBrush)
        p.end()
