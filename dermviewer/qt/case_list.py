"""The case list: one row per opened photo, with its thumbnail, top class and status."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from dermviewer.qt.convert import to_qpixmap
from dermviewer.state.cases import Case, CaseList, CaseStatus

__all__ = ["CaseListWidget"]


def _placeholder(colour: QColor) -> QIcon:
    pm = QPixmap(64, 64)
    pm.fill(colour)
    return QIcon(pm)


class CaseListWidget(QListWidget):
    def __init__(self, cases: CaseList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("case_list")
        self.cases = cases
        self.setIconSize(QSize(56, 56))
        self.setUniformItemSizes(True)
        self.setSpacing(1)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._pending_icon = _placeholder(QColor(200, 200, 200))
        self._failed_icon = _placeholder(QColor(230, 176, 170))
        cases.added.connect(self._added)
        cases.changed.connect(self._changed)
        cases.current_changed.connect(self._current)
        cases.cleared.connect(self.clear)
        self.currentRowChanged.connect(self._row_changed)

    def _text(self, c: Case) -> str:
        if c.status is CaseStatus.FAILED:
            return f"{c.name}\n✕ cannot open"
        if c.prediction is not None:
            top = c.prediction.top
            mark = " ⚠" if top.malignant else ""
            return f"{c.name}\n{top.code} {top.probability * 100:.0f}%{mark}"
        return f"{c.name}\n…"

    def _added(self, first: int, new: list[Case]) -> None:
        for c in new:
            item = QListWidgetItem(self._pending_icon, self._text(c))
            item.setToolTip(str(c.path))
            self.addItem(item)

    def _changed(self, index: int) -> None:
        c, item = self.cases[index], self.item(index)
        if item is None:
            return
        item.setText(self._text(c))
        if c.status is CaseStatus.FAILED:
            item.setIcon(self._failed_icon)
            item.setToolTip(c.error or str(c.path))
            return
        item.setToolTip(str(c.path))  # a reset (new model) row loses its old error too
        item.setIcon(QIcon(to_qpixmap(c.thumbnail)) if c.thumbnail is not None else self._pending_icon)

    def _current(self, index: int) -> None:
        if self.currentRow() != index:
            self.blockSignals(True)
            self.setCurrentRow(index)
            self.blockSignals(False)

    def _row_changed(self, row: int) -> None:
        if row >= 0:
            self.cases.set_current(row)
