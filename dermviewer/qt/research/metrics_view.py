"""Metrics view: the headline numbers, the per-class table and the reliability diagram (with ECE), plus
dataset-level localisation when it has been computed. Every number comes from the Qt-free state
(:class:`~dermviewer.state.research.metrics.ResearchMetrics`, i.e. ``engine.metrics``)."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.research.plotting import PlotCanvas
from dermviewer.state.research.metrics import ResearchMetrics
from engine.metrics import LocalisationSummary

__all__ = ["MetricsView", "pct"]


def pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}%"


class ReliabilityPlot(PlotCanvas):
    def __init__(self) -> None:
        super().__init__("reliability_plot", 3.6, 2.8, margins=(0.11, 0.97, 0.88, 0.2))
        self.ax = self.fig.add_subplot()
        self.clear_plot()

    def clear_plot(self) -> None:
        self.ax.clear()
        self.ax.set_title("Reliability diagram")
        self.ax.set_xlabel("confidence (top-1 probability)")
        self.ax.set_ylabel("accuracy")
        self.style(self.ax)
        self.draw_idle()

    def show_metrics(self, m: ResearchMetrics) -> None:
        self.clear_plot()
        b = m.reliability
        if b is None or m.disease is None:
            return
        centres = (b.edges[:-1] + b.edges[1:]) / 2
        width = b.edges[1] - b.edges[0]
        filled = b.counts > 0
        self.ax.bar(centres[filled], b.accuracy[filled], width=width * 0.92, color="#2874a6", alpha=0.85,
                    label="accuracy in bin")
        self.ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
        self.ax.plot(b.confidence[filled], b.accuracy[filled], "o", color="#c0392b", markersize=3,
                     label="mean confidence")
        for x, y, n in zip(centres[filled], b.accuracy[filled], b.counts[filled], strict=True):
            self.ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=6,
                             color="#444")
        self.ax.set_xlim(0, 1)
        self.ax.set_ylim(0, 1.05)
        self.ax.set_title(f"Reliability diagram (ECE {100 * m.disease.ece:.1f}%; numbers = photos per bin)")
        self.ax.legend(loc="upper left")
        self.draw_idle()


class MetricsView(QWidget):
    localisation_requested = Signal(int)  # how many photos with a mask to score

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Open a dataset to see its metrics.")
        self.summary.setObjectName("metrics_summary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(self.summary.textFormat().RichText)
        self.table = QTableWidget(0, 6)
        self.table.setObjectName("per_class_table")
        self.table.setHorizontalHeaderLabels(["class", "precision", "recall", "F1", "support", "AUROC"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setMinimumHeight(170)
        self.plot = ReliabilityPlot()
        self.loc_label = QLabel("Localisation against lesion masks: not computed yet.")
        self.loc_label.setObjectName("localisation_summary")
        self.loc_label.setWordWrap(True)
        self.loc_n = QSpinBox()
        self.loc_n.setRange(5, 5000)
        self.loc_n.setValue(60)
        self.loc_n.setSuffix(" photos")
        self.loc_button = QPushButton("Compute localisation")
        self.loc_button.clicked.connect(lambda: self.localisation_requested.emit(self.loc_n.value()))
        loc_row = QHBoxLayout()
        loc_row.addWidget(self.loc_label, 1)
        loc_row.addWidget(self.loc_n)
        loc_row.addWidget(self.loc_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(loc_row)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.plot, 1)

    def show_metrics(self, m: ResearchMetrics | None, plot: bool = True) -> None:
        """``plot=False`` when only the deferred attribute line changed: a redraw costs ~0.1 s of UI thread."""
        if m is None:
            self.summary.setText("No evaluation yet: press <b>Evaluate</b>.")
            self.table.setRowCount(0)
            self.plot.clear_plot()
            return
        counts = (f"<b>{m.n_scored}</b> of {m.n_photos} photos scored · {m.n_excluded} excluded · "
                  f"{m.n_unmapped} unmapped · {m.n_missing} without label or result")
        lines = [counts]
        d = m.disease
        if d is not None:
            top = " · ".join(f"top-{k} {pct(v)}" for k, v in d.top_k_accuracy.items() if k > 1)
            lines.append(f"<b>Disease</b>: accuracy {pct(d.accuracy)} · <b>BMA {pct(d.balanced_accuracy)}</b> · "
                         f"macro-F1 {pct(d.macro_f1)} · macro AUROC {d.macro_auroc:.3f} · {top} · ECE {pct(d.ece)}")
            if d.malignancy is not None:
                mb = d.malignancy
                lines.append(f"<b>Malignant vs benign</b> (summed probability ≥ {mb.threshold:.2f}): sensitivity "
                             f"{pct(mb.sensitivity)} · specificity {pct(mb.specificity)} · AUROC {mb.auroc:.3f} "
                             f"({mb.n_malignant} malignant, {mb.n_benign} benign)")
        if m.body_part is not None:
            lines.append(f"<b>Body part</b>: accuracy {pct(m.body_part.accuracy)} · BMA "
                         f"{pct(m.body_part.balanced_accuracy)}")
        if m.attributes is not None:
            a = m.attributes
            lines.append(f"<b>Attributes</b> (unknowns masked): mAP-class {pct(a.map_class)} · mAP-image "
                         f"{pct(a.map_image)} · macro-F1 {pct(a.macro_f1)}")
        self.summary.setText("<br>".join(lines))
        self.table.setRowCount(0 if d is None else len(d.per_class))
        for r, c in enumerate(d.per_class if d is not None else []):
            for col, text in enumerate((c.name, pct(c.precision), pct(c.recall), pct(c.f1), str(c.support),
                                        "–" if not np.isfinite(c.auroc) else f"{c.auroc:.3f}")):
                self.table.setItem(r, col, QTableWidgetItem(text))
        if plot:
            self.plot.show_metrics(m)

    def show_localisation(self, s: LocalisationSummary | None, running: str = "") -> None:
        if running:
            self.loc_label.setText(running)
            return
        if s is None:
            self.loc_label.setText("Localisation against lesion masks: not computed yet.")
            return
        self.loc_label.setText(
            f"<b>Localisation</b> ({s.n_scored} photos with a mask, {s.n_no_mask} without): Grad-CAM pointing game "
            f"<b>{pct(s.pointing_game)}</b> vs centre prior {pct(s.centre_prior)} · LSM hit rate "
            f"<b>{pct(s.lsm_hit_rate)}</b> vs chance {pct(s.lsm_chance)} · CAM energy in lesion "
            f"{s.energy_ratio:.2f}× its area share")

    def table_rows(self, m: ResearchMetrics) -> tuple[list[str], list[list[object]]]:
        header = ["class", "precision", "recall", "f1", "support", "auroc"]
        d = m.disease
        rows: list[list[object]] = [] if d is None else [
            [c.name, c.precision, c.recall, c.f1, c.support, c.auroc] for c in d.per_class]
        return header, rows
