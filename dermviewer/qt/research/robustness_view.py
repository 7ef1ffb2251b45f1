"""Robustness sweeps over a dataset: accuracy and prediction-flip rate against corruption severity (one
line per corruption; level 0 = the clean photos), and the confusion matrix under a chosen corruption
and level (Mishra et al.'s Table 5 and severity figures, made interactive)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.plot_throttle import ThrottledRedraw
from dermviewer.qt.research.confusion import ConfusionMatrixWidget
from dermviewer.qt.research.plotting import CLASS_COLOURS, PlotCanvas
from dermviewer.state.research.robustness import SweepPoint, SweepProgress
from engine.corrupt import LEVELS, list_corruptions

__all__ = ["RobustnessView"]


class SweepCurves(ThrottledRedraw, PlotCanvas):
    """Accuracy/BMA and flip-rate curves; a running sweep's partial points are replotted and redrawn at most
    every ``PARTIAL_REDRAW_S`` (:mod:`dermviewer.qt.plot_throttle`), the last ones at once."""

    def __init__(self) -> None:
        super().__init__("robustness_curves", 5.0, 2.8, margins=(0.09, 0.98, 0.88, 0.17))
        self.init_throttle()
        self.acc, self.flip = self.fig.subplots(1, 2)
        self.show_points([], None, None)

    def show_points(self, points: list[SweepPoint], clean_acc: float | None, clean_bma: float | None,
                    final: bool = True) -> None:
        self.request_redraw(final, lambda: self._plot(points, clean_acc, clean_bma))

    def _plot(self, points: list[SweepPoint], clean_acc: float | None, clean_bma: float | None) -> None:
        for ax in (self.acc, self.flip):
            ax.clear()
            self.style(ax)
            ax.set_xlabel("severity level (0 = clean)")
            ax.set_xticks([0, *LEVELS])
            ax.set_ylim(0, 1)
        self.acc.set_title("Accuracy vs severity")
        self.acc.set_ylabel("accuracy (solid) / BMA (dashed)")
        self.flip.set_title("Prediction flips vs severity")
        self.flip.set_ylabel("flip rate (share of photos)")
        names = list(dict.fromkeys(p.corruption for p in points))
        for k, name in enumerate(names):
            pts = sorted((p for p in points if p.corruption == name), key=lambda p: p.level)
            colour = CLASS_COLOURS[k % len(CLASS_COLOURS)]
            xs = [p.level for p in pts]
            acc, bma, flip = [p.accuracy for p in pts], [p.bma for p in pts], [p.flip_rate for p in pts]
            if clean_acc is not None and clean_bma is not None:
                xs, acc, bma, flip = [0, *xs], [clean_acc, *acc], [clean_bma, *bma], [0.0, *flip]
            label = name.replace("_", " ")
            self.acc.plot(xs, acc, "-o", color=colour, markersize=3, label=label)
            self.acc.plot(xs, bma, "--", color=colour, linewidth=1)
            self.flip.plot(xs, flip, "-o", color=colour, markersize=3, label=label)
        if names:
            self.acc.legend(loc="lower left")


class RobustnessView(QWidget):
    run_requested = Signal(object, int)  # corruption names, number of photos
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.checks: dict[str, QCheckBox] = {}
        boxes = QGridLayout()
        for n, name in enumerate(list_corruptions()):
            cb = QCheckBox(name.replace("_", " "))
            cb.setObjectName(f"sweep_{name}")
            cb.setChecked(name in ("salt_and_pepper", "gaussian_blur"))  # the paper's two
            self.checks[name] = cb
            boxes.addWidget(cb, n // 3, n % 3)
        self.n_photos = QSpinBox()
        self.n_photos.setRange(6, 10000)
        self.n_photos.setValue(60)
        self.n_photos.setSuffix(" photos (stratified)")
        self.run = QPushButton("Run sweep")
        self.run.setObjectName("run_sweep")
        self.run.clicked.connect(lambda: self.run_requested.emit(
            [n for n, cb in self.checks.items() if cb.isChecked()], self.n_photos.value()))
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.cancel_requested)
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("Every checked corruption at levels 1-5 over a class-stratified sample.")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.n_photos)
        row.addWidget(self.run)
        row.addWidget(self.cancel)
        row.addWidget(self.progress, 1)
        self.curves = SweepCurves()
        self.choice = QComboBox()
        self.choice.setObjectName("sweep_confusion_choice")
        self.choice.currentIndexChanged.connect(self._show_choice)
        self.confusion = ConfusionMatrixWidget("Confusion under the chosen corruption", clickable=False)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("confusion matrix under"))
        pick.addWidget(self.choice, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(boxes)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.curves, 2)
        lay.addLayout(pick)
        lay.addWidget(self.confusion, 1)
        self.points: list[SweepPoint] = []
        self.codes: list[str] = []
        self.clean: tuple[float, float] | None = None

    def set_running(self, running: bool) -> None:
        self.run.setEnabled(not running)
        self.cancel.setEnabled(running)

    def set_clean(self, accuracy: float | None, bma: float | None, codes: list[str]) -> None:
        self.clean = None if accuracy is None or bma is None else (accuracy, bma)
        self.codes = codes

    def show_progress(self, item: SweepProgress) -> None:
        self.progress.setRange(0, max(1, item.total))
        self.progress.setValue(item.done)
        eta = "" if item.eta_s is None else f", about {item.eta_s:.0f} s left"
        self.status.setText(f"{item.done} / {item.total} corrupted predictions{eta}"
                            + (" — done" if item.finished else ""))
        if len(item.points) != len(self.points) or item.finished:
            self.points = item.points
            acc, bma = self.clean if self.clean else (None, None)
            self.curves.show_points(self.points, acc, bma, final=item.finished)
            current = self.choice.currentText()
            self.choice.blockSignals(True)
            self.choice.clear()
            self.choice.addItems([f"{p.corruption.replace('_', ' ')} level {p.level}" for p in self.points])
            self.choice.blockSignals(False)
            at = self.choice.findText(current)
            self.choice.setCurrentIndex(at if at >= 0 else len(self.points) - 1)
            self._show_choice()

    def _show_choice(self) -> None:
        i = self.choice.currentIndex()
        if 0 <= i < len(self.points) and self.codes:
            self.confusion.show_matrix(self.points[i].confusion, self.codes)
