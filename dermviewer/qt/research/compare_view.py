"""Model comparison: metric deltas (B − A) with paired 95 % bootstrap intervals for accuracy and BMA, and
the photos on which the two models' top diagnoses differ (one button sends them to the gallery)."""

from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.research.metrics_view import pct
from dermviewer.state.research.compare import Comparison

__all__ = ["CompareView"]


class CompareView(QWidget):
    compare_requested = Signal(str)  # path of an OOF file or a model bundle
    browse_requested = Signal()
    show_disagreements = Signal(object)  # list of photo indices

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = QComboBox()
        self.choice.setObjectName("compare_choice")
        self.choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        go = QPushButton("Compare")
        go.setObjectName("compare_run")
        go.clicked.connect(lambda: self.compare_requested.emit(self.choice.currentData() or ""))
        browse = QPushButton("Other model or OOF file…")
        browse.clicked.connect(self.browse_requested)
        row = QHBoxLayout()
        row.addWidget(QLabel("A = the shown evaluation; B ="))
        row.addWidget(self.choice, 1)
        row.addWidget(go)
        row.addWidget(browse)
        self.summary = QLabel("Pick a second model: its out-of-fold file, or a bundle evaluated on this dataset.")
        self.summary.setObjectName("compare_summary")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("compare_table")
        self.table.setHorizontalHeaderLabels(["metric", "A", "B", "B − A"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.disagree = QPushButton("Show the photos they disagree on")
        self.disagree.setObjectName("compare_disagreements")
        self.disagree.setEnabled(False)
        self.disagree.clicked.connect(lambda: self.show_disagreements.emit(
            self.comparison.disagreements if self.comparison else []))
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.disagree)
        self.comparison: Comparison | None = None

    def set_choices(self, choices: list[tuple[str, str]]) -> None:
        self.choice.clear()
        for label, path in choices:
            self.choice.addItem(label, path)

    def show_comparison(self, c: Comparison) -> None:
        self.comparison = c
        self.summary.setText(
            f"<b>A</b> = {c.name_a}, <b>B</b> = {c.name_b}, on {c.n_photos} scored photos. Accuracy B − A "
            f"{100 * c.deltas['accuracy']:+.1f} points, 95% CI {c.accuracy_ci}; BMA B − A "
            f"{100 * c.deltas['BMA']:+.1f} points, 95% CI {c.bma_ci} (paired bootstrap). "
            f"They disagree on <b>{len(c.disagreements)}</b> photos.")
        rows = c.rows()
        self.table.setRowCount(len(rows))
        for r, (name, a, b, d) in enumerate(rows):
            auroc = name == "macro AUROC"
            fmt = (lambda v: "–" if not math.isfinite(v) else f"{v:.3f}") if auroc else pct
            delta = "–" if not math.isfinite(d) else (f"{d:+.3f}" if auroc else f"{100 * d:+.1f} pts")
            for col, text in enumerate((name, fmt(a), fmt(b), delta)):
                self.table.setItem(r, col, QTableWidgetItem(text))
        self.disagree.setEnabled(bool(c.disagreements))
