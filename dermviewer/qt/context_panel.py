"""Clinical-context fields and the photo-only | photo-plus-context differential side by side (issue 11, item 3).

Draws :class:`~dermviewer.state.context.ContextReview` and turns edits into its ``set_field`` calls; every
decision (parsing, debouncing, which job runs, stale results) is the review's. Widgets written from the
review's events are written with their signals blocked, so a pre-fill never bounces back as an edit.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.score_table import BENIGN, MALIGNANT, MALIGNANT_ROLE, PROB_ROLE
from dermviewer.state.app_state import AppState
from dermviewer.state.context import FIELD_LABELS, ContextComparison, ContextReview
from engine.context import ATTRIBUTE_FIELDS, CONTEXT_FIELDS, ClinicalContext

__all__ = ["ContextPanel"]

UNKNOWN = "unknown"
FLAG_CHOICES = (("yes", True), ("no", False), ("?", None))  # button text, value
NOTE_STYLE = "padding: 5px; border-radius: 4px; background: #eaeded;"
SHIFT_STYLE = "padding: 5px; border-radius: 4px; background: #d6eaf8; color: #1b4f72;"
CHANGED_STYLE = "padding: 5px; border-radius: 4px; background: #fdebd0; color: #7e5109; font-weight: 600;"
ERROR_STYLE = "padding: 5px; border-radius: 4px; background: #fadbd8; color: #78281f;"
UP, DOWN = QColor(30, 132, 73), QColor(192, 57, 43)
SEGMENT_STYLE = ("QToolButton { padding: 1px 2px; border: 1px solid #aab7b8; background: #fbfcfc; }"
                 "QToolButton:checked { background: #2e86c1; color: white; border-color: #2874a6; }"
                 "QToolButton:disabled:checked { background: #aeb6bf; border-color: #aeb6bf; }")


class CompactBarDelegate(QStyledItemDelegate):
    """A probability bar with its percentage, narrow enough for two side by side in the findings column."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        p = float(index.data(PROB_ROLE) or 0.0)
        cell: QRect = option.rect  # type: ignore[attr-defined]
        r = cell.adjusted(3, 6, -42, -6)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 25))
        painter.drawRoundedRect(r, 2, 2)
        painter.setBrush(MALIGNANT if index.data(MALIGNANT_ROLE) else BENIGN)
        painter.drawRoundedRect(QRect(r.x(), r.y(), max(2, round(r.width() * p)), r.height()), 2, 2)
        painter.setPen(option.palette.text().color())  # type: ignore[attr-defined]
        painter.drawText(QRect(r.right() + 2, cell.y(), 38, cell.height()),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{p * 100:.1f}%")
        painter.restore()


class ContextPanel(QGroupBox):
    """``field_edited(name, value)`` (``None`` = unknown) and ``reset_requested()`` when the user acts;
    ``comparison_shown()`` once a photo-plus-context differential is drawn."""

    field_edited = Signal(str, object)
    reset_requested = Signal()
    comparison_shown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Clinical context", parent)
        self.setObjectName("context_panel")
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        self.age = QSpinBox()
        self.age.setObjectName("context_age")
        self.age.setRange(-1, 120)
        self.age.setSpecialValueText(UNKNOWN)  # the minimum, -1, reads "unknown"
        self.age.setSuffix(" years")
        self.age.setValue(-1)
        self.age.valueChanged.connect(lambda v: self.field_edited.emit("age", None if v < 0 else v))
        self.site = QComboBox()
        self.site.setObjectName("context_body_part")
        self.site.addItem(UNKNOWN, None)
        self.site.currentIndexChanged.connect(lambda _i: self.field_edited.emit("body_part", self.site.currentData()))
        grid.addWidget(QLabel(FIELD_LABELS["age"]), 0, 0)
        grid.addWidget(self.age, 0, 1)
        grid.addWidget(QLabel(FIELD_LABELS["body_part"]), 0, 2)
        grid.addWidget(self.site, 0, 3)
        self.flags: dict[str, QButtonGroup] = {}
        self._field_widgets: dict[str, QWidget] = {"age": self.age, "body_part": self.site}
        for i, name in enumerate(ATTRIBUTE_FIELDS):
            row, col = 1 + i // 2, 2 * (i % 2)
            grid.addWidget(QLabel(FIELD_LABELS[name]), row, col)
            grid.addWidget(self._segmented(name), row, col + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        lay.addLayout(grid)
        buttons = QHBoxLayout()
        self.source = QLabel()
        self.source.setStyleSheet("color: gray; font-size: 8pt;")
        self.reset = QPushButton("Reset")
        self.reset.setObjectName("context_reset")
        self.reset.setToolTip("Back to what the dataset manifest says (or nothing known)")
        self.reset.clicked.connect(self.reset_requested)
        buttons.addWidget(self.source, 1)
        buttons.addWidget(self.reset)
        lay.addLayout(buttons)
        self.status = QLabel()
        self.status.setObjectName("context_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("context_table")
        self.table.setHorizontalHeaderLabels(["", "Photo only", "With context", "Δ pts"])
        self.table.verticalHeader().setVisible(False)
        self.table.setShowGrid(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for col in (1, 2):
            self.table.setItemDelegateForColumn(col, CompactBarDelegate(self.table))
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.hide()
        lay.addWidget(self.table)
        self.comparison: ContextComparison | None = None
        self._available = False
        self.set_available(False)
        self._note("The model is loading…", NOTE_STYLE)  # until bind() learns whether it takes the context

    def _segmented(self, name: str) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        group = QButtonGroup(box)
        group.setExclusive(True)
        for i, (text, _value) in enumerate(FLAG_CHOICES):
            b = QToolButton()
            b.setObjectName(f"context_{name}_{'unknown' if text == '?' else text}")
            b.setText(text)
            b.setCheckable(True)
            b.setFixedWidth(30)
            b.setStyleSheet(SEGMENT_STYLE)
            b.setToolTip(f"{FIELD_LABELS[name]}: {'not known' if text == '?' else text}")
            group.addButton(b, i)
            row.addWidget(b)
        row.addStretch(1)
        group.button(2).setChecked(True)
        group.idClicked.connect(lambda i, n=name: self.field_edited.emit(n, FLAG_CHOICES[i][1]))
        self.flags[name] = group
        self._field_widgets[name] = box
        return box

    # -- review -> widgets ------------------------------------------------------------------------------
    def bind(self, review: ContextReview, state: AppState) -> None:
        """Subscribe to the review's events and pass edits on to it (one call from the window)."""
        self.field_edited.connect(review.set_field)
        self.reset_requested.connect(review.reset)
        review.context_changed.connect(self.show_context)
        review.comparison_changed.connect(self.show_comparison)
        review.pending_changed.connect(self.set_pending)
        review.field_rejected.connect(lambda _name, text: self._note(f"Not used — {text}", ERROR_STYLE))
        state.model_changed.connect(lambda: self._model_changed(review, state))
        self._model_changed(review, state)

    def _model_changed(self, review: ContextReview, state: AppState) -> None:
        if not state.model.ready:
            return
        tax = state.model.predictor.bundle.taxonomy
        names = {c.code: c.name for c in tax.head("body_part").classes} if "body_part" in tax.heads else {}
        enc = review.encoding
        codes = list(enc.sites) if enc is not None and enc.sites else list(names)
        self.set_sites([(c, names.get(c, c)) for c in codes])
        self.set_available(enc is not None, enc.fields if enc is not None else ())
        self.show_context(review.context)

    def set_sites(self, sites: list[tuple[str, str]]) -> None:
        """(code, name) pairs, in the model's order; "unknown" stays first."""
        current = self.site.currentData()
        self.site.blockSignals(True)
        self.site.clear()
        self.site.addItem(UNKNOWN, None)
        for code, name in sites:
            self.site.addItem(name, code)
        self.site.setCurrentIndex(max(0, self.site.findData(current)))
        self.site.blockSignals(False)

    def set_available(self, available: bool, fields: tuple[str, ...] = CONTEXT_FIELDS) -> None:
        """Enable the fields the model takes (``fields``); all are disabled for a photo-only model."""
        self._available = available
        for name, w in self._field_widgets.items():
            w.setEnabled(available and name in fields)
            w.setToolTip("" if not available or name in fields else "This model does not take this field")
        self.reset.setEnabled(available)
        if not available:
            self.table.hide()
            self._note("This model takes no clinical context: the differential above is from the photo alone.",
                       NOTE_STYLE)
        elif self.comparison is None:
            self._idle_note()

    def show_context(self, ctx: ClinicalContext) -> None:
        widgets = [self.age, self.site, *self.flags.values()]
        for w in widgets:
            w.blockSignals(True)
        self.age.setValue(-1 if ctx.age is None else round(ctx.age))
        i = self.site.findData(ctx.body_part)
        if i < 0 and ctx.body_part is not None:  # a site the model does not list: shown, not dropped
            self.site.addItem(ctx.body_part, ctx.body_part)
            i = self.site.count() - 1
        self.site.setCurrentIndex(max(0, i))
        for name, group in self.flags.items():
            value = getattr(ctx, name)
            group.button(next(j for j, (_t, v) in enumerate(FLAG_CHOICES) if v is value)).setChecked(True)
        for w in widgets:
            w.blockSignals(False)
        known = ctx.known()
        self.source.setText(f"{len(known)} of 8 fields known" if known else "nothing known")
        if self._available and self.comparison is None:
            self._idle_note()

    def set_pending(self, pending: bool) -> None:
        if pending and self._available:
            self._note("Predicting with the clinical context…", NOTE_STYLE)

    def show_comparison(self, cmp: ContextComparison | None) -> None:
        self.comparison = cmp
        if cmp is None:
            self.table.hide()
            self.table.setRowCount(0)
            if self._available:
                self._idle_note()
            return
        used = ", ".join(FIELD_LABELS[f].lower() for f in cmp.used) or "nothing"
        given = f"<br><small style='font-weight: normal'>given: {used}</small>"
        self._note(("⚠ " if cmp.changed else "") + cmp.summary() + given, CHANGED_STYLE if cmp.changed else SHIFT_STYLE)
        self.table.setRowCount(len(cmp.rows))
        for i, r in enumerate(cmp.rows):
            name = QTableWidgetItem(r.code)  # the names are in the differential above; codes keep bars wide
            name.setData(Qt.ItemDataRole.UserRole, r.name)
            name.setToolTip(f"{r.name} ({r.code}): rank {i + 1} from the photo, "
                            f"{cmp.rank_with_context(r.code)} with the context")
            if r.malignant:
                name.setForeground(MALIGNANT)
                f = name.font()
                f.setBold(True)
                name.setFont(f)
            self.table.setItem(i, 0, name)
            for col, p in ((1, r.photo_only), (2, r.with_context)):
                bar = QTableWidgetItem()
                bar.setData(PROB_ROLE, p)
                bar.setData(MALIGNANT_ROLE, r.malignant)
                self.table.setItem(i, col, bar)
            pts = r.delta * 100
            arrow = "▲" if pts >= 0.05 else "▼" if pts <= -0.05 else "·"
            delta = QTableWidgetItem(f"{arrow} {pts:+.1f}")
            delta.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if abs(pts) >= 0.05:
                delta.setForeground(UP if pts > 0 else DOWN)
            self.table.setItem(i, 3, delta)
        rows = max(1, len(cmp.rows))
        self.table.setFixedHeight(rows * 22 + self.table.horizontalHeader().sizeHint().height() + 4)
        self.table.show()
        self.comparison_shown.emit()

    def shown_probabilities(self, column: int) -> dict[str, float]:
        """{class name: probability} as drawn in ``column`` (1 photo only, 2 photo + context)."""
        return {self.table.item(i, 0).data(Qt.ItemDataRole.UserRole): float(self.table.item(i, column).data(PROB_ROLE))
                for i in range(self.table.rowCount())}

    def _idle_note(self) -> None:
        self._note("Give any field to see what the context changes in the differential.", NOTE_STYLE)

    def _note(self, html: str, style: str) -> None:
        self.status.setText(html)
        self.status.setStyleSheet(style)
