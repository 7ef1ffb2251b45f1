"""The findings: uncertainty notice, differential (top-k), the clinical context and what it changes
(:mod:`dermviewer.qt.context_panel`), body parts, attributes and patient metadata."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.context_panel import ContextPanel
from dermviewer.qt.score_table import ScoreTable
from engine.prediction import Prediction

__all__ = ["FindingsPanel"]

NOTICE_STYLE = (
    "QLabel { background: #fdebd0; color: #7e5109; border: 1px solid #f5b041; border-radius: 4px; padding: 6px; }"
)


class FindingsPanel(QWidget):
    class_chosen = Signal(str, int)
    top_k_changed = Signal(int)

    def __init__(self, top_k: int = 5, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel("No photo open")
        self.title.setObjectName("case_title")
        self.title.setStyleSheet("font-size: 14pt; font-weight: 600;")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.uncertain = QLabel()
        self.uncertain.setObjectName("uncertain_notice")
        self.uncertain.setStyleSheet(NOTICE_STYLE)
        self.uncertain.setWordWrap(True)
        self.uncertain.hide()
        lay.addWidget(self.uncertain)

        diff_box = QGroupBox("Differential diagnosis")
        dl = QVBoxLayout(diff_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show top"))
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 50)
        self.top_k.setValue(top_k)
        self.top_k.valueChanged.connect(self._top_k_changed)
        row.addWidget(self.top_k)
        row.addStretch(1)
        hint = QLabel("click a class for its Grad-CAM")
        hint.setStyleSheet("color: gray; font-size: 8pt;")
        row.addWidget(hint)
        dl.addLayout(row)
        self.differential = ScoreTable("disease", "malignant")
        dl.addWidget(self.differential)
        lay.addWidget(diff_box)
        self.context = ContextPanel()
        lay.addWidget(self.context)

        bp_box = QGroupBox("Body part")
        QVBoxLayout(bp_box).addWidget(bp := ScoreTable("body_part", "predicted"))
        self.body_parts = bp
        lay.addWidget(bp_box)
        at_box = QGroupBox("Attributes")
        al = QVBoxLayout(at_box)
        self.attr_threshold = QLabel()
        self.attr_threshold.setStyleSheet("color: gray; font-size: 8pt;")
        al.addWidget(self.attr_threshold)
        al.addWidget(at := ScoreTable("attributes", "✓ above threshold"))
        self.attributes = at
        lay.addWidget(at_box)

        self.meta_box = QGroupBox("Patient (from dataset manifest)")
        self.meta_form = QFormLayout(self.meta_box)
        lay.addWidget(self.meta_box)
        self.meta_box.hide()
        lay.addStretch(1)
        for t in (self.differential, self.body_parts, self.attributes):
            t.class_chosen.connect(self.class_chosen)
        self._prediction: Prediction | None = None
        self._codes: dict[str, list[str]] = {}

    def _top_k_changed(self, k: int) -> None:
        self.top_k_changed.emit(k)
        if self._prediction is not None:
            self.show_prediction(self._prediction, self._codes, self.title.text())

    def show_prediction(self, p: Prediction, codes: dict[str, list[str]], title: str,
                        attribute_threshold: float | None = None) -> None:
        self._prediction, self._codes = p, codes
        self.title.setText(title)
        k = self.top_k.value()
        diff = p.differential[:k]
        self.differential.set_scores(diff, codes.get("disease", []), [s.malignant for s in diff])
        bps = sorted(p.body_parts, key=lambda s: -s.probability)[: max(k, 5)]
        self.body_parts.set_scores(bps, codes.get("body_part", []), [s.positive for s in bps])
        self.attributes.set_scores(p.attributes, codes.get("attributes", []), [s.positive for s in p.attributes])
        if attribute_threshold is not None:
            self.attr_threshold.setText(f"threshold {attribute_threshold:.2f} (multi-label)")
        if p.is_uncertain():
            self.uncertain.setText(
                f"<b>Uncertain prediction</b> — top class {p.top.probability * 100:.0f}%, "
                f"entropy {p.entropy():.2f}. Treat the differential as a weak hint.")
            self.uncertain.show()
        else:
            self.uncertain.hide()

    def show_metadata(self, meta: dict[str, str]) -> None:
        while self.meta_form.rowCount():
            self.meta_form.removeRow(0)
        for k, v in meta.items():
            value = QLabel(v)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.meta_form.addRow(f"{k}:", value)
        self.meta_box.setVisible(bool(meta))

    def clear(self, title: str = "No photo open") -> None:
        self._prediction = None
        self.title.setText(title)
        for t in (self.differential, self.body_parts, self.attributes):
            t.set_scores([], [], [])
        self.uncertain.hide()
        self.show_metadata({})
