"""Subgroup table: accuracy and BMA per body part, Fitzpatrick type, sex and age band, with 95 % bootstrap
intervals; groups too small to judge are greyed and say so."""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.research.metrics_view import pct
from dermviewer.state.research.subgroups import MIN_PHOTOS, SubgroupRow

__all__ = ["HEADER", "SubgroupView"]

HEADER = ["subgroup", "value", "photos", "classes", "accuracy", "95% CI", "BMA", "95% CI", "note"]


class SubgroupView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        note = QLabel(f"Accuracy and balanced accuracy (BMA) per subgroup of the scored photos, with 95% percentile "
                      f"bootstrap intervals (1000 resamples). Groups under {MIN_PHOTOS} photos or with a single class "
                      "are <i>too small to judge</i>.")
        note.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADER))
        self.table.setObjectName("subgroup_table")
        self.table.setHorizontalHeaderLabels(HEADER)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        lay = QVBoxLayout(self)
        lay.addWidget(note)
        lay.addWidget(self.table, 1)
        self.rows: list[SubgroupRow] = []

    def show_rows(self, rows: list[SubgroupRow]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        grey = QBrush(QColor("#909497"))
        for r, row in enumerate(rows):
            cells = [row.column.replace("_", " "), row.value, str(row.n), str(row.n_classes), pct(row.accuracy),
                     str(row.accuracy_ci or "–"), pct(row.bma), str(row.bma_ci or "–"),
                     "too small" if row.too_small else ""]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if row.too_small:
                    item.setForeground(grey)
                    item.setToolTip(f"too small to judge: {row.n} photos, {row.n_classes} classes "
                                    f"(needs {MIN_PHOTOS} photos and two classes)")
                self.table.setItem(r, c, item)

    def export_rows(self) -> tuple[list[str], list[list[object]]]:
        header = ["subgroup", "value", "photos", "classes", "accuracy", "accuracy_low", "accuracy_high", "bma",
                  "bma_low", "bma_high", "too_small"]
        rows: list[list[object]] = []
        for r in self.rows:
            a = (r.accuracy_ci.low, r.accuracy_ci.high) if r.accuracy_ci else (float("nan"),) * 2
            b = (r.bma_ci.low, r.bma_ci.high) if r.bma_ci else (float("nan"),) * 2
            rows.append([r.column, r.value, r.n, r.n_classes, r.accuracy, *a, r.bma, *b, r.too_small])
        return header, rows
