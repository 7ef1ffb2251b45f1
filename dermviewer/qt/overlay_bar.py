"""Overlay controls above the canvas: a toggle per layer, LSM head, split, opacity and colormap.

It writes into ``OverlaySettings`` through the app state and re-reads them when the state changes,
blocking its own signals while doing so (napari's habit) so nothing echoes. The Grad-CAM toggle reads
"Grad-CAM (loading…)" and stays disabled while torch loads in the background (ONNX Runtime backend).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QWidget

from dermviewer.state.app_state import AppState
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


class OverlayBar(QWidget):
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
        for w in (self.lsm, self.head, self.tokens, self.gradcam, self.split, self.split_pos):
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
        state.overlays_changed.connect(self.sync)
        state.model.explainer_changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        o = self.state.overlays
        widgets = (self.lsm, self.tokens, self.gradcam, self.split, self.split_pos, self.opacity, self.colormap,
                   self.head)
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
        finally:
            for w in widgets:
                w.blockSignals(False)
