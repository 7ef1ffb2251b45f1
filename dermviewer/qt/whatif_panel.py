"""What-if panel: corruption sliders, clean vs corrupted differential, "prediction changed" flag, sweep plot.

The sweep plot is matplotlib's, whose import costs more than the rest of the window (0.3-0.6 s here):
:class:`LazySweepPlot` builds it the first time the tab is shown, so the window appears without it (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dermviewer.state.whatif import WhatIfComparison, WhatIfParams

if TYPE_CHECKING:
    from PySide6.QtGui import QShowEvent

    from dermviewer.qt.sweep_plot import SweepPlot
    from dermviewer.state.sweep import SweepResult

__all__ = ["SLIDERS", "LazySweepPlot", "SliderSpec", "WhatIfPanel"]


class LazySweepPlot(QWidget):
    """Stands in for :class:`~dermviewer.qt.sweep_plot.SweepPlot` (same ``result``, ``show_result``,
    ``clear_result``) and builds it inside itself when first shown; results given before are kept."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweep_plot_slot")
        self.setMinimumHeight(220)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._plot: SweepPlot | None = None
        self._result: SweepResult | None = None

    @property
    def plot(self) -> SweepPlot:
        if self._plot is None:
            from dermviewer.qt.sweep_plot import SweepPlot

            self._plot = SweepPlot(self)
            self._layout.addWidget(self._plot)
            if self._result is not None:
                self._plot.show_result(self._result)
        return self._plot

    @property
    def result(self) -> SweepResult | None:
        return self._plot.result if self._plot is not None else self._result

    def show_result(self, result: SweepResult | None) -> None:
        if self._plot is None:
            self._result = result
        else:
            self._plot.show_result(result)

    def clear_result(self) -> None:
        self.show_result(None)

    def showEvent(self, event: QShowEvent) -> None:
        _ = self.plot
        super().showEvent(event)


@dataclass(frozen=True)
class SliderSpec:
    key: str
    label: str
    lo: int
    hi: int
    scale: float  # parameter = slider value / scale
    fmt: str

    def text(self, v: float) -> str:
        return self.fmt.format(v)


SLIDERS = (
    SliderSpec("sp_amount", "Salt & pepper", 0, 50, 1000.0, "{:.1%}"),
    SliderSpec("sp_black_ratio", "  black share", 0, 100, 100.0, "{:.0%}"),
    SliderSpec("blur_sigma", "Gaussian blur σ", 0, 50, 10.0, "{:.1f}"),
    SliderSpec("motion_length", "Motion blur length", 1, 41, 1.0, "{:.0f} px"),
    SliderSpec("motion_angle", "  angle", 0, 180, 1.0, "{:.0f}°"),
    SliderSpec("jpeg_quality", "JPEG quality", 1, 100, 1.0, "{:.0f}"),
    SliderSpec("brightness", "Brightness", -100, 100, 1.0, "{:+.0f}"),
)


class WhatIfPanel(QWidget):
    params_changed = Signal(object)  # WhatIfParams
    sweep_requested = Signal()
    sweep_cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        box = QGroupBox("Corrupt the photo")
        grid = QGridLayout(box)
        self.sliders: dict[str, QSlider] = {}
        self.values: dict[str, QLabel] = {}
        defaults = WhatIfParams()
        for row, spec in enumerate(SLIDERS):
            s = QSlider(Qt.Orientation.Horizontal)
            s.setObjectName(f"whatif_{spec.key}")
            s.setRange(spec.lo, spec.hi)
            s.setValue(round(getattr(defaults, spec.key) * spec.scale))
            value = QLabel(spec.text(getattr(defaults, spec.key)))
            value.setMinimumWidth(48)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(QLabel(spec.label), row, 0)
            grid.addWidget(s, row, 1)
            grid.addWidget(value, row, 2)
            s.valueChanged.connect(self._changed)
            self.sliders[spec.key], self.values[spec.key] = s, value
        buttons = QHBoxLayout()
        self.reset = QPushButton("Reset")
        self.reset.clicked.connect(self.reset_params)
        self.sweep = QPushButton("Sweep severities")
        self.sweep.setToolTip("Top-1 probability vs severity level 0-5 for each corruption (engine severity table)")
        self.sweep.clicked.connect(self.sweep_requested)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.sweep_cancelled)
        self.cancel.hide()
        buttons.addWidget(self.reset)
        buttons.addStretch(1)
        buttons.addWidget(self.sweep)
        buttons.addWidget(self.cancel)
        grid.addLayout(buttons, len(SLIDERS), 0, 1, 3)
        lay.addWidget(box)

        self.flag = QLabel("Move a slider to see how the prediction responds.")
        self.flag.setObjectName("whatif_flag")
        self.flag.setWordWrap(True)
        self.flag.setStyleSheet("padding: 6px; border-radius: 4px; background: #eaeded;")
        lay.addWidget(self.flag)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("whatif_table")
        self.table.setHorizontalHeaderLabels(["Disease", "Clean", "Corrupted", "Δ pts"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(20)
        lay.addWidget(self.table)
        self.progress = QProgressBar()
        self.progress.hide()
        lay.addWidget(self.progress)
        self.plot = LazySweepPlot()
        lay.addWidget(self.plot, 1)

    def params(self) -> WhatIfParams:
        kw = {spec.key: self.sliders[spec.key].value() / spec.scale for spec in SLIDERS}
        kw["jpeg_quality"] = int(kw["jpeg_quality"])
        return WhatIfParams(**kw)  # type: ignore[arg-type]

    def _changed(self) -> None:
        p = self.params()
        for spec in SLIDERS:
            self.values[spec.key].setText(spec.text(getattr(p, spec.key)))
        self.params_changed.emit(p)

    def reset_params(self) -> None:
        defaults = WhatIfParams()
        for spec in SLIDERS:
            s = self.sliders[spec.key]
            s.blockSignals(True)
            s.setValue(round(getattr(defaults, spec.key) * spec.scale))
            s.blockSignals(False)
        self._changed()

    def set_pending(self) -> None:
        self.flag.setText("Predicting the corrupted photo…")
        self.flag.setStyleSheet("padding: 6px; border-radius: 4px; background: #eaeded;")

    def show_comparison(self, cmp: WhatIfComparison | None, active: list[str]) -> None:
        if cmp is None:
            self.table.setRowCount(0)
            self.flag.setText("No corruption active: the photo is shown as taken.")
            self.flag.setStyleSheet("padding: 6px; border-radius: 4px; background: #eaeded;")
            return
        colour = "#fadbd8; color: #78281f" if cmp.changed else "#d5f5e3; color: #145a32"
        self.flag.setStyleSheet(f"padding: 6px; border-radius: 4px; background: {colour}; font-weight: 600;")
        self.flag.setText(("⚠ " if cmp.changed else "✓ ") + cmp.summary() + "<br><small>" + "; ".join(active)
                          + "</small>")
        self.table.setRowCount(len(cmp.rows))
        for i, r in enumerate(cmp.rows):
            cells = [r.name, f"{r.clean * 100:.1f}%", f"{r.corrupted * 100:.1f}%", f"{r.delta * 100:+.1f}"]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if j == 3 and abs(r.delta) >= 0.05:
                    item.setForeground(QColor(192, 57, 43) if r.delta < 0 else QColor(30, 132, 73))
                if j == 0 and r.malignant:
                    item.setForeground(QColor(192, 57, 43))
                self.table.setItem(i, j, item)

    def sweep_running(self, running: bool, total: int = 25) -> None:
        self.sweep.setEnabled(not running)
        self.cancel.setVisible(running)
        self.progress.setVisible(running)
        self.progress.setRange(0, total)
        self.progress.setValue(0)
