"""Embedding map: every photo's embedding projected to 2-D (PCA or t-SNE), coloured by true class, by
correctness or by a subgroup; clicking a point opens that photo in the inspector."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from dermviewer.qt.research.plotting import CLASS_COLOURS, PlotCanvas

__all__ = ["EmbeddingView"]

COLOUR_BY = ("true class", "predicted class", "correct / wrong", "body_part", "fitzpatrick", "sex", "age_band")


class EmbeddingPlot(PlotCanvas):
    picked = Signal(int)

    def __init__(self) -> None:
        super().__init__("embedding_plot", 4.6, 3.6)
        self.ax = self.fig.add_subplot()
        self.xy = np.zeros((0, 2))
        self.mpl_connect("button_press_event", self._click)
        self.show_map(self.xy, np.zeros(0, dtype=object), "")

    def show_map(self, xy: np.ndarray, groups: np.ndarray, title: str) -> None:
        self.xy = xy
        self.ax.clear()
        self.style(self.ax)
        self.ax.set_title(title or "Embedding map: press “Compute map”")
        self.ax.set_xlabel("component 1 (arbitrary units)")
        self.ax.set_ylabel("component 2 (arbitrary units)")
        ok = np.isfinite(xy).all(axis=1) if len(xy) else np.zeros(0, bool)
        values = sorted({str(g) for g in groups[ok]}, key=lambda v: (v in ("", "(unknown)"), v))
        for k, value in enumerate(values):
            sel = ok & (groups.astype(str) == value)
            colour = "#bfc9ca" if value in ("", "(unknown)") else CLASS_COLOURS[k % len(CLASS_COLOURS)]
            self.ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=colour, alpha=0.8, linewidths=0,
                            label=f"{value or '?'} ({sel.sum()})")
        if values:
            self.ax.legend(loc="best", markerscale=1.5, ncols=2 if len(values) > 7 else 1)
        self.draw_idle()

    def _click(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.inaxes is not self.ax or event.xdata is None or not len(self.xy):
            return
        ok = np.isfinite(self.xy).all(axis=1)
        span = np.nanmax(self.xy, axis=0) - np.nanmin(self.xy, axis=0)
        d = np.where(ok, np.hypot((self.xy[:, 0] - event.xdata) / span[0], (self.xy[:, 1] - event.ydata) / span[1]),
                     np.inf)
        i = int(np.argmin(d))
        if d[i] < 0.03:
            self.picked.emit(i)


class EmbeddingView(QWidget):
    compute_requested = Signal(str)  # "pca" | "tsne"
    photo_requested = Signal(int)
    colour_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = QComboBox()
        self.method.addItem("PCA", "pca")
        self.method.addItem("t-SNE (slower)", "tsne")
        self.colour = QComboBox()
        self.colour.setObjectName("embedding_colour")
        self.colour.addItems(list(COLOUR_BY))
        self.colour.currentTextChanged.connect(self.colour_changed)
        go = QPushButton("Compute map")
        go.setObjectName("embedding_compute")
        go.clicked.connect(lambda: self.compute_requested.emit(self.method.currentData()))
        row = QHBoxLayout()
        row.addWidget(QLabel("projection"))
        row.addWidget(self.method)
        row.addWidget(QLabel("colour by"))
        row.addWidget(self.colour)
        row.addWidget(go)
        row.addStretch(1)
        self.plot = EmbeddingPlot()
        self.plot.picked.connect(self.photo_requested)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.plot, 1)
        self.xy: np.ndarray | None = None
