"""The confusion matrix as a widget: counts in cells shaded by the share of their true class (row), the
diagonal in green, errors in red. Clicking a cell emits ``cell_clicked(true, predicted)``; the panel
then shows exactly those photos in the gallery."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
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

__all__ = ["ConfusionMatrixWidget"]


def _shade(share: float, diagonal: bool) -> QColor:
    base = (39, 174, 96) if diagonal else (192, 57, 43)
    a = 0.08 + 0.8 * float(np.clip(share, 0, 1))
    return QColor(round(255 - a * (255 - base[0])), round(255 - a * (255 - base[1])), round(255 - a * (255 - base[2])))


class ConfusionMatrixWidget(QWidget):
    cell_clicked = Signal(int, int)

    def __init__(self, title: str = "Confusion matrix", parent: QWidget | None = None, clickable: bool = True) -> None:
        super().__init__(parent)
        hint = "; click a cell to see its photos" if clickable else ""
        self.title = QLabel(f"<b>{title}</b> <span style='color:gray'>rows: true class, columns: "
                            f"predicted{hint}</span>")
        self.title.setWordWrap(True)
        self.table = QTableWidget()
        self.table.setObjectName("confusion_table")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.cellClicked.connect(self.cell_clicked)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(220)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.table, 1)
        self.matrix = np.zeros((0, 0), np.int64)

    def show_matrix(self, matrix: np.ndarray, codes: list[str]) -> None:
        self.matrix = np.asarray(matrix, np.int64)
        n = len(codes)
        self.table.clear()
        self.table.setRowCount(n)
        self.table.setColumnCount(n)
        self.table.setMinimumHeight(min(30 + 34 * n, 520))  # every row readable; a 14-class matrix scrolls
        support = self.matrix.sum(axis=1)
        self.table.setHorizontalHeaderLabels([f"→ {c}" for c in codes])
        self.table.setVerticalHeaderLabels([f"{c} (n={support[i]})" for i, c in enumerate(codes)])
        for t in range(n):
            for p in range(n):
                count = int(self.matrix[t, p])
                share = count / support[t] if support[t] else 0.0
                item = QTableWidgetItem(f"{count}\n{100 * share:.0f}%")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(QBrush(_shade(share, t == p)))
                item.setForeground(QBrush(QColor("white" if share > 0.55 else "black")))
                item.setToolTip(f"true {codes[t]}, predicted {codes[p]}: {count} photos "
                                f"({100 * share:.0f}% of {codes[t]})")
                self.table.setItem(t, p, item)

    def count(self, true_index: int, pred_index: int) -> int:
        return int(self.matrix[true_index, pred_index])

    def click(self, true_index: int, pred_index: int) -> None:
        """What a mouse click on the cell does (used by keyboard activation and tests)."""
        self.table.setCurrentCell(true_index, pred_index)
        self.cell_clicked.emit(true_index, pred_index)
