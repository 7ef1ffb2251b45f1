"""Overlay controls above the canvas: a toggle per layer, LSM head, split, opacity and colormap.

It writes into ``OverlaySettings`` through the app state and re-reads them when the state changes,
blocking its own signals while doing so (napari's habit) so nothing echoes. The Grad-CAM toggle reads
"Grad-CAM (loading…)" and stays disabled while torch loads in the background (ONNX Runtime backend).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QWidget

from dermviewer.state.app_state import AppState
from dermviewer.state.lesions import LESION_COLOURS
from dermviewer.state.overlays import COLORMAP_CHOICES, LSM_HEADS

__all__ = ["GRADCAM_LOADING", "OverlayBar"]

GRADCAM_LOADING = "Grad-CAM (loading…)"
_GRADCAM_TIP = "Click a class in the findings to compute its Grad-CAM"


def _slider(lo: int, hi: int, value: int, width: int = 90) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setFixedWidth(width)
    return s


WHOLE_PHOTO = "Whole photo"


def _swatch(colour: str) -> QIcon:
    pm = QPixmap(12, 12)
    pm.fill(QColor(colour))
    return QIcon(pm)


class OverlayBar(QWidget):
    lesion_chosen = Signal(object)  # int (found lesion) or None (whole photo): what the differential is about

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 3, 6, 3)
        self.lsm = QCheckBox("LSM map")
        self.head = QComboBox()
        self.head.addItems(list(LSM_HEADS))
        self.head.setToolTip("Which head's Lesion Selection Module scores to show")
        self.tokens = QCheckBox("Selected tokens")
        self.gradcam = QCheckBox("Grad-CAM")
        self.gradcam.setToolTip(_GRADCAM_TIP)
        self.split = QCheckBox("Split")
        self.split.setToolTip("Photo on the left, overlays on the right of the divider")
        self.split_pos = _slider(0, 100, 50, 70)
        self.opacity = _slider(0, 100, 50)
        self.opacity.setObjectName("opacity")
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAP_CHOICES))
        self.lesion = QCheckBox("Lesion outline")
        self.lesion.setObjectName("lesion_outline")
        self.lesion.setToolTip("The lesion finder's outline and box of each lesion it found")
        self.lesion_colour = QComboBox()
        self.lesion_colour.setObjectName("lesion_colour")
        for c in LESION_COLOURS:
            self.lesion_colour.addItem(_swatch(c), "", c)
        self.lesion_colour.setToolTip("Outline colour")
        self.lesion_opacity = _slider(0, 100, 90, 60)
        self.lesion_opacity.setObjectName("lesion_opacity")
        self.lesion_opacity.setToolTip("Outline opacity")
        self.lesion_choice = QComboBox()
        self.lesion_choice.setObjectName("lesion_choice")
        self.lesion_choice.setToolTip("What the differential is about: the whole photo, or the crop around one "
                                      "found lesion (the classifier zoomed onto it)")
        self.lesion_status = QLabel("")
        self.lesion_status.setObjectName("lesion_status")
        for w in (self.lsm, self.head, self.tokens, self.gradcam, self.split, self.split_pos):
            lay.addWidget(w)
        lay.addSpacing(12)
        for w in (self.lesion, self.lesion_colour, self.lesion_opacity, QLabel("Differential of"),
                  self.lesion_choice, self.lesion_status):
            lay.addWidget(w)
        lay.addSpacing(12)
        lay.addWidget(QLabel("Opacity"))
        lay.addWidget(self.opacity)
        lay.addWidget(QLabel("Colormap"))
        lay.addWidget(self.colormap)
        lay.addStretch(1)
        self.lsm.toggled.connect(lambda v: self.state.set_overlay(lsm=v))
        self.tokens.toggled.connect(lambda v: self.state.set_overlay(tokens=v))
        self.gradcam.toggled.connect(lambda v: self.state.set_overlay(gradcam=v))
        self.split.toggled.connect(lambda v: self.state.set_overlay(split=v))
        self.split_pos.valueChanged.connect(lambda v: self.state.set_overlay(split_position=v / 100))
        self.opacity.valueChanged.connect(lambda v: self.state.set_overlay(opacity=v / 100))
        self.colormap.currentTextChanged.connect(lambda v: self.state.set_overlay(colormap=v))
        self.head.currentTextChanged.connect(lambda v: self.state.set_overlay(lsm_head=v))
        self.lesion.toggled.connect(lambda v: self.state.set_overlay(lesion=v))
        self.lesion_colour.currentIndexChanged.connect(
            lambda i: self.state.set_overlay(lesion_colour=self.lesion_colour.itemData(i)))
        self.lesion_opacity.valueChanged.connect(lambda v: self.state.set_overlay(lesion_opacity=v / 100))
        self.lesion_choice.activated.connect(lambda i: self.lesion_chosen.emit(self.lesion_choice.itemData(i)))
        state.overlays_changed.connect(self.sync)
        state.view_changed.connect(self.sync)
        state.model.explainer_changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        o = self.state.overlays
        widgets = (self.lsm, self.tokens, self.gradcam, self.split, self.split_pos, self.opacity, self.colormap,
                   self.head, self.lesion, self.lesion_colour, self.lesion_opacity, self.lesion_choice)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.lsm.setChecked(o.lsm)
            self.tokens.setChecked(o.tokens)
            self.gradcam.setChecked(o.gradcam)
            host = self.state.model
            loading = host.can_explain and not host.explainer_ready  # torch still loading in the background
            self.gradcam.setEnabled(self.state.gradcam is not None and not loading)
            target = self.state.explain_target
            if loading:
                self.gradcam.setText(GRADCAM_LOADING)
                self.gradcam.setToolTip("Grad-CAM needs PyTorch, which is loading in the background")
            else:
                self.gradcam.setText(f"Grad-CAM: {target.name}" if target else "Grad-CAM")
                self.gradcam.setToolTip(f"Grad-CAM is unavailable: {host.explainer_error}" if host.explainer_error
                                        else _GRADCAM_TIP)
            self.split.setChecked(o.split)
            self.split_pos.setEnabled(o.split)
            self.split_pos.setValue(round(o.split_position * 100))
            self.opacity.setValue(round(o.opacity * 100))
            self.colormap.setCurrentText(o.colormap)
            self.head.setCurrentText(o.lsm_head)
            self._sync_lesions()
        finally:
            for w in widgets:
                w.blockSignals(False)

    def _sync_lesions(self) -> None:
        o, view = self.state.overlays, self.state.view
        self.lesion.setChecked(o.lesion)
        self.lesion_colour.setCurrentIndex(max(0, self.lesion_colour.findData(o.lesion_colour)))
        self.lesion_opacity.setValue(round(o.lesion_opacity * 100))
        self.lesion_choice.clear()
        self.lesion_choice.addItem(WHOLE_PHOTO, None)
        found = None if view is None else view.lesions
        for k, les in enumerate(found.lesions if found is not None else []):
            self.lesion_choice.addItem(f"Lesion {k + 1} ({100 * les.area_fraction:.0f} %)", k)
        index = None if view is None else view.lesion_index
        self.lesion_choice.setCurrentIndex(0 if index is None else index + 1)
        self.lesion_choice.setEnabled(found is not None and found.found)
        for w in (self.lesion, self.lesion_colour, self.lesion_opacity):
            w.setEnabled(found is not None)
        if view is None:
            self.lesion_status.setText("")
        elif found is None:
            reason = self.state.lesions.error or "lesion finder off"
            self.lesion_status.setText("no lesion finder")
            self.lesion_status.setToolTip(reason)
        else:
            self.lesion_status.setText(found.summary())
            self.lesion_status.setToolTip("")
