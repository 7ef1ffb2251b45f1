"""The gallery: the photos of the current selection (a confusion cell, filters, a disagreement list),
sorted by confidence, loss or margin. Filters combine (every set one must hold); the count above the
thumbnails is the size of the selection, so a cell's count and its click always agree.

Thumbnails arrive from a worker (:meth:`set_thumbnail`); the list shows names and scores at once.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.selection import PhotoFilter, PhotoTable

__all__ = ["MAX_SHOWN", "Gallery"]

MAX_SHOWN = 300  # thumbnails drawn at once; the count always gives the full selection
THUMB = 88
ANY = "any"
_TRI = {ANY: None, "yes": True, "no": False}
_SORTS = {"least confident first": ("confidence", False), "most confident first": ("confidence", True),
          "highest loss first": ("loss", True), "smallest margin first": ("margin", False),
          "dataset order": ("index", False)}


def _placeholder() -> QIcon:
    pm = QPixmap(THUMB, THUMB)
    pm.fill(QColor("#e5e7e9"))
    return QIcon(pm)


class Gallery(QWidget):
    filter_changed = Signal(object)  # a PhotoFilter
    sort_changed = Signal(str, bool)
    photo_activated = Signal(int)
    thumbnails_needed = Signal(object)  # list of photo indices
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        self.combos: dict[str, QComboBox] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        labels = {"true": "true", "pred": "predicted", "body_part": "body part", "fitzpatrick": "Fitzpatrick",
                  "age_band": "age", "sex": "sex", "correct": "correct", "has_mask": "has mask"}
        for n, (key, text) in enumerate(labels.items()):
            combo = QComboBox()
            combo.setObjectName(f"filter_{key}")
            combo.addItem(ANY)
            combo.currentIndexChanged.connect(self._emit_filter)
            self.combos[key] = combo
            grid.addWidget(QLabel(text), n // 4 * 2, n % 4)
            grid.addWidget(combo, n // 4 * 2 + 1, n % 4)
        for key in ("correct", "has_mask"):
            self.combos[key].addItems(["yes", "no"])
        self.conflict = QCheckBox("only label conflicts (not scored)")
        self.conflict.setObjectName("filter_label_conflict")
        self.conflict.toggled.connect(self._emit_filter)
        self.sort = QComboBox()
        self.sort.setObjectName("gallery_sort")
        self.sort.addItems(list(_SORTS))
        self.sort.currentTextChanged.connect(lambda t: self.sort_changed.emit(*_SORTS[t]))
        self.count = QLabel("No photos")
        self.count.setObjectName("gallery_count")
        clear = QPushButton("Clear filters")
        clear.clicked.connect(self.clear_filters)
        export = QPushButton("Export selection as manifest…")
        export.setObjectName("export_selection")
        export.clicked.connect(self.export_requested)
        self.list = QListWidget()
        self.list.setObjectName("gallery_list")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 34, THUMB + 38))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setWordWrap(True)
        self.list.itemClicked.connect(lambda it: self.photo_activated.emit(int(it.data(Qt.ItemDataRole.UserRole))))
        row = QHBoxLayout()
        row.addWidget(self.conflict)
        row.addStretch(1)
        row.addWidget(clear)
        row2 = QHBoxLayout()
        row2.addWidget(self.count, 1)
        row2.addWidget(QLabel("sort"))
        row2.addWidget(self.sort)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(grid)
        lay.addLayout(row)
        lay.addLayout(row2)
        lay.addWidget(self.list, 1)
        lay.addWidget(export)
        self.codes: list[str] = []
        self.items: dict[int, QListWidgetItem] = {}
        self.shown: np.ndarray = np.zeros(0, np.int64)

    # -- dataset -> choices ------------------------------------------------------------------------
    def set_dataset(self, dataset: EvalDataset | None, table: PhotoTable | None) -> None:
        self._updating = True
        try:
            self.codes = dataset.taxonomy.head("disease").codes if dataset is not None else []
            for key in ("true", "pred"):
                self._refill(key, self.codes)
            for key in ("body_part", "fitzpatrick", "age_band", "sex"):
                values = sorted({str(v) for v in table.subgroups[key]} - {""}) if table is not None else []
                self._refill(key, values)
            for key in ("correct", "has_mask"):
                self.combos[key].setCurrentIndex(0)
            self.conflict.setChecked(False)
        finally:
            self._updating = False

    def _refill(self, key: str, values: list[str]) -> None:
        combo = self.combos[key]
        combo.clear()
        combo.addItem(ANY)
        combo.addItems(values)

    def clear_filters(self) -> None:
        self._updating = True
        try:
            for combo in self.combos.values():
                combo.setCurrentIndex(0)
            self.conflict.setChecked(False)
        finally:
            self._updating = False
        self._emit_filter()

    # -- widgets <-> filter ------------------------------------------------------------------------
    def current_filter(self) -> PhotoFilter:
        def pick(key: str) -> str | None:
            t = self.combos[key].currentText()
            return None if t in (ANY, "") else t

        def cls(key: str) -> frozenset[int] | None:
            v = pick(key)
            return None if v is None or v not in self.codes else frozenset({self.codes.index(v)})

        subgroups = {k: frozenset({v}) for k in ("body_part", "fitzpatrick", "age_band", "sex")
                     if (v := pick(k)) is not None}
        conflict = self.conflict.isChecked()
        return PhotoFilter(true_class=cls("true"), pred_class=cls("pred"), subgroups=subgroups,
                           correct=_TRI[self.combos["correct"].currentText() or ANY],
                           has_mask=_TRI[self.combos["has_mask"].currentText() or ANY],
                           label_conflict=True if conflict else None, scored_only=not conflict)

    def show_filter(self, f: PhotoFilter) -> None:
        """Reflect a filter set elsewhere (a confusion-cell click) without emitting it back."""
        self._updating = True
        try:
            for key, value in (("true", f.true_class), ("pred", f.pred_class)):
                text = self.codes[next(iter(value))] if value is not None and len(value) == 1 else ANY
                self.combos[key].setCurrentText(text)
        finally:
            self._updating = False

    def _emit_filter(self) -> None:
        if not self._updating:
            self.filter_changed.emit(self.current_filter())

    # -- selection -> thumbnails -------------------------------------------------------------------
    def show_selection(self, indices: np.ndarray, dataset: EvalDataset, table: PhotoTable, note: str = "") -> None:
        self.shown = np.asarray(indices, np.int64)
        n = len(self.shown)
        more = f" (first {MAX_SHOWN} shown)" if n > MAX_SHOWN else ""
        self.count.setText(f"<b>{n}</b> photo{'s' if n != 1 else ''}{more}{note}")
        self.list.clear()
        self.items.clear()
        icon = _placeholder()
        for i in self.shown[:MAX_SHOWN].tolist():
            t, p = int(table.true[i]), int(table.pred[i])
            label = f"{self.codes[t] if t >= 0 else '?'}→{self.codes[p] if p >= 0 else '?'}"
            conf = table.confidence[i]
            text = f"{label} {conf:.2f}" if np.isfinite(conf) else label
            item = QListWidgetItem(icon, text)
            item.setData(Qt.ItemDataRole.UserRole, int(i))
            item.setToolTip(f"{dataset.display_name(i)}\ntrue {label.split('→')[0]}, predicted "
                            f"{label.split('→')[1]}\nconfidence {conf:.3f}, loss {table.loss[i]:.3f}, "
                            f"margin {table.margin[i]:.3f}")
            if t >= 0 and p >= 0 and t != p:
                item.setForeground(QColor("#922b21"))
            self.list.addItem(item)
            self.items[int(i)] = item
        self.thumbnails_needed.emit(self.shown[:MAX_SHOWN].tolist())

    def set_thumbnail(self, index: int, image: QImage) -> None:
        item = self.items.get(index)
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
