"""A ranked list of labels with probability bars; clicking a row asks for that class's Grad-CAM."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from engine.prediction import LabelScore

__all__ = ["BENIGN", "MALIGNANT", "ProbabilityBarDelegate", "ScoreTable"]

MALIGNANT = QColor(192, 57, 43)
BENIGN = QColor(46, 134, 193)
PROB_ROLE = Qt.ItemDataRole.UserRole + 1
MALIGNANT_ROLE = Qt.ItemDataRole.UserRole + 2
INDEX_ROLE = Qt.ItemDataRole.UserRole + 3


class ProbabilityBarDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        if option.state & QStyle.StateFlag.State_Selected:  # type: ignore[attr-defined]
            painter.fillRect(option.rect, option.palette.highlight())  # type: ignore[attr-defined]
        p = float(index.data(PROB_ROLE) or 0.0)
        r: QRect = option.rect.adjusted(4, 5, -52, -5)  # type: ignore[attr-defined]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 25))
        painter.drawRoundedRect(r, 3, 3)
        painter.setBrush(MALIGNANT if index.data(MALIGNANT_ROLE) else BENIGN)
        painter.drawRoundedRect(QRect(r.x(), r.y(), max(2, round(r.width() * p)), r.height()), 3, 3)
        painter.setPen(option.palette.text().color())  # type: ignore[attr-defined]
        text_rect = QRect(r.right() + 4, option.rect.y(), 48, option.rect.height())  # type: ignore[attr-defined]
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{p * 100:.1f}%")
        painter.restore()


class ScoreTable(QTableWidget):
    """Columns: label, probability bar, flag. ``class_chosen(head, taxonomy index)`` on click."""

    class_chosen = Signal(str, int)

    def __init__(self, head: str, flag_text: str, parent: QWidget | None = None) -> None:
        super().__init__(0, 3, parent)
        self.head, self.flag_text = head, flag_text
        self.setObjectName(f"scores_{head}")
        self.setHorizontalHeaderLabels(["", "Probability", ""])
        self.horizontalHeader().setVisible(False)
        self.verticalHeader().setVisible(False)
        self.setShowGrid(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setItemDelegateForColumn(1, ProbabilityBarDelegate(self))
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cellClicked.connect(self._clicked)
        self.scores: list[LabelScore] = []

    def set_scores(self, scores: list[LabelScore], taxonomy_codes: list[str], flagged: list[bool]) -> None:
        self.scores = list(scores)
        self.clearSelection()
        self.setRowCount(len(scores))
        for row, (s, flag) in enumerate(zip(scores, flagged, strict=True)):
            name = QTableWidgetItem(s.name)
            name.setData(INDEX_ROLE, taxonomy_codes.index(s.code) if s.code in taxonomy_codes else -1)
            name.setToolTip(f"{s.name} ({s.code}): {s.probability * 100:.2f}% — click for its Grad-CAM")
            if s.malignant:
                name.setForeground(MALIGNANT)
                f = name.font()
                f.setBold(True)
                name.setFont(f)
            bar = QTableWidgetItem()
            bar.setData(PROB_ROLE, s.probability)
            bar.setData(MALIGNANT_ROLE, s.malignant)
            tag = QTableWidgetItem(self.flag_text if flag else "")
            if flag:
                tag.setForeground(MALIGNANT if self.flag_text == "malignant" else QColor(30, 132, 73))
            self.setItem(row, 0, name)
            self.setItem(row, 1, bar)
            self.setItem(row, 2, tag)
        self.setFixedHeight(max(1, len(scores)) * self.verticalHeader().defaultSectionSize() + 4)

    def row_probability(self, row: int) -> float:
        return float(self.item(row, 1).data(PROB_ROLE))

    def _clicked(self, row: int, _col: int) -> None:
        idx = int(self.item(row, 0).data(INDEX_ROLE))
        if idx >= 0:
            self.class_chosen.emit(self.head, idx)
