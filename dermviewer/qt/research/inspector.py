"""Error inspector: for one photo, true vs predicted for every head, the photo with its lesion outline and
LSM tokens, Grad-CAM of the true and of the predicted class side by side, the photo's localisation
figures, and its five nearest neighbours (each marked whether it shares the label; one click opens it).

:func:`compose_views` (numpy only) runs in the worker with the inspection itself; the widget only
draws the arrays it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.convert import to_qimage
from dermviewer.state.jobs import thumbnail
from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.inspection import PhotoInspection
from engine.explain import blend, draw_boxes, overlay, selected_boxes

__all__ = ["InspectorView", "InspectorWidget", "ScaledImage", "compose_views"]

VIEW_SIDE = 320
MASK_COLOUR = (0, 255, 0)


@dataclass
class InspectorView:
    """What the widget draws: three RGB panels plus neighbour thumbnails, all numpy."""

    inspection: PhotoInspection
    photo: np.ndarray  # photo + mask outline + LSM token boxes
    cam_true: np.ndarray | None
    cam_pred: np.ndarray | None
    neighbour_thumbs: list[np.ndarray]


def _fit(rgb: np.ndarray, side: int = VIEW_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _outline(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return rgb
    out = np.ascontiguousarray(rgb).copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, MASK_COLOUR, max(2, round(min(out.shape[:2]) / 160)))
    return out


def compose_views(inspection: PhotoInspection, dataset: EvalDataset) -> InspectorView:
    img = inspection.image
    pred = inspection.prediction
    photo = img
    if "disease" in pred.selected:
        photo = draw_boxes(photo, selected_boxes(pred.selected["disease"], pred.grid_size, img.shape[:2]),
                           (255, 255, 255))
    photo = _outline(photo, inspection.mask)

    def cam(m: np.ndarray | None) -> np.ndarray | None:
        return None if m is None else _outline(blend(img, overlay(img, m, "jet", 0.5)), inspection.mask)

    thumbs = []
    for n in inspection.neighbours:
        try:
            thumbs.append(thumbnail(dataset.images.load(n.index), 84))
        except Exception:  # noqa: BLE001 -- a neighbour without pixels shows a blank tile, not an error
            thumbs.append(np.full((84, 84, 3), 220, np.uint8))
    return InspectorView(inspection, _fit(photo), None if inspection.cam_true is None else _fit(cam(
        inspection.cam_true)), None if inspection.cam_pred is None else _fit(cam(inspection.cam_pred)), thumbs)


class ScaledImage(QLabel):
    """A picture that fits its cell (aspect kept) whatever the layout gives it; never grown by its pixmap."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(120, 120)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)  # square cells: photos are near-square, no dead bands above and below
        self.setSizePolicy(policy)
        self.setStyleSheet("background: #eaeded; color: #566573;")
        self.source: QPixmap | None = None

    def set_image(self, pixmap: QPixmap | None, text: str = "") -> None:
        self.source = pixmap
        if pixmap is None:
            self.setPixmap(QPixmap())
            self.setText(text)
        self._fit()

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    def sizeHint(self) -> QSize:
        return QSize(200, 200)

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.source is not None:
            self.setPixmap(self.source.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation))


class InspectorWidget(QWidget):
    photo_requested = Signal(int)  # a neighbour was clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Click a photo in the gallery to inspect it.")
        self.title.setObjectName("inspector_title")
        self.title.setWordWrap(True)
        self.heads = QLabel("")
        self.heads.setObjectName("inspector_heads")
        self.heads.setWordWrap(True)
        self.figures = QLabel("")
        self.figures.setObjectName("inspector_figures")
        self.figures.setWordWrap(True)
        self.views = {k: ScaledImage(f"inspector_{k}") for k in ("photo", "cam_true", "cam_pred")}
        self.captions = {k: QLabel(t) for k, t in (("photo", "photo · lesion outline (green) · LSM tokens (white)"),
                                                   ("cam_true", "Grad-CAM: true class"),
                                                   ("cam_pred", "Grad-CAM: predicted class"))}
        self.differential = QLabel("")
        self.differential.setObjectName("inspector_differential")
        self.differential.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.differential.setWordWrap(True)
        grid = QGridLayout()  # photo | CAM of the true class / differential | CAM of the predicted class
        for (row, col), key in zip(((0, 0), (0, 1), (2, 1)), ("photo", "cam_true", "cam_pred"), strict=True):
            self.captions[key].setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.captions[key].setWordWrap(True)
            grid.addWidget(self.captions[key], row, col)
            grid.addWidget(self.views[key], row + 1, col)
        grid.addWidget(self.differential, 2, 0, 2, 1)
        for col in (0, 1):
            grid.setColumnStretch(col, 1)
        self.neighbour_row = QHBoxLayout()
        self.neighbour_buttons: list[QToolButton] = []
        nb_title = QLabel("<b>Nearest neighbours</b> (by embedding; ✓ shares the label, ✗ does not; click to open)")
        nb_title.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.heads)
        lay.addLayout(grid)
        lay.addWidget(self.figures)
        lay.addWidget(nb_title)
        lay.addLayout(self.neighbour_row)
        lay.addStretch(1)
        self.current: InspectorView | None = None

    def show_pending(self, name: str) -> None:
        self.title.setText(f"<b>{name}</b> — computing Grad-CAM and neighbours…")

    def show_error(self, text: str) -> None:
        self.title.setText(f"<span style='color:#922b21'>{text}</span>")

    def show_view(self, view: InspectorView, dataset: EvalDataset) -> None:
        self.current = view
        ins = view.inspection
        codes = dataset.taxonomy.head("disease").codes
        true = codes[ins.true_class] if ins.true_class >= 0 else "unknown"
        verdict = "" if ins.true_class < 0 else (" ✓ correct" if ins.true_class == ins.pred_class else " ✗ wrong")
        other = "" if ins.model_class == ins.pred_class else (
            f"<br><span style='color:gray'>(the evaluation shown says {codes[ins.pred_class]}; the loaded model, "
            f"whose LSM tokens and Grad-CAMs these are, says {codes[ins.model_class]})</span>")
        self.title.setText(f"<b>{dataset.display_name(ins.index)}</b> — true <b>{true}</b>, predicted "
                           f"<b>{codes[ins.pred_class]}</b> ({ins.pred_probability:.0%}){verdict}{other}")
        rows = []
        for h in ins.heads:
            mark = "" if h.agree is None else (" ✓" if h.agree else " ✗")
            rows.append(f"<tr><td><b>{h.head.replace('_', ' ')}</b></td><td>true: {', '.join(h.true) or '–'}</td>"
                        f"<td>predicted: {', '.join(h.predicted) or '–'}{mark}</td></tr>")
        self.heads.setText("<table cellspacing=6>" + "".join(rows) + "</table>")
        self.captions["cam_true"].setText(f"Grad-CAM: true class ({true})")
        self.captions["cam_pred"].setText(f"Grad-CAM: predicted class ({codes[ins.pred_class]})")
        for key in ("photo", "cam_true", "cam_pred"):
            arr = getattr(view, key)
            self.views[key].set_image(None if arr is None else QPixmap.fromImage(to_qimage(arr)),
                                      "no label" if key == "cam_true" else "–")
        self.differential.setText(self._differential(view, dataset))
        loc = ins.localisation
        if loc is None or loc.status != "ok":
            why = "no lesion mask for this photo" if loc is None or loc.status == "no_mask" else "empty mask"
            self.figures.setText(f"<b>Localisation</b>: {why}")
        else:
            self.figures.setText(
                f"<b>Localisation</b> (CAM of the predicted class): peak inside the lesion "
                f"<b>{'yes' if loc.pointing == 1 else 'no'}</b> (centre prior: "
                f"{'yes' if loc.centre_prior == 1 else 'no'}) · LSM tokens on the lesion "
                f"<b>{loc.lsm_hit_rate:.0%}</b> (chance {loc.lsm_chance:.0%}) · CAM energy in lesion "
                f"{loc.energy_ratio:.2f}× its area share")
        self._show_neighbours(view, dataset)

    @staticmethod
    def _differential(view: InspectorView, dataset: EvalDataset) -> str:
        """The evaluation's disease probabilities as a small bar table (true class marked)."""
        ins = view.inspection
        codes = dataset.taxonomy.head("disease").codes
        probs = ins.disease_probs
        rows = []
        for c in np.argsort(-probs):
            bar = "█" * max(1, round(24 * float(probs[c])))
            mark = " ← true" if c == ins.true_class else ""
            colour = "#1e8449" if c == ins.true_class else ("#922b21" if c == ins.pred_class else "#5d6d7e")
            rows.append(f"<tr><td><b>{codes[c]}</b></td><td align=right>{100 * float(probs[c]):.0f}%</td>"
                        f"<td style='color:{colour}'>{bar}{mark}</td></tr>")
        return ("<b>Differential</b> (the evaluation's disease probabilities)<table cellspacing=3>" + "".join(rows)
                + "</table>")

    def _show_neighbours(self, view: InspectorView, dataset: EvalDataset) -> None:
        for b in self.neighbour_buttons:
            self.neighbour_row.removeWidget(b)
            b.deleteLater()
        self.neighbour_buttons.clear()
        codes = dataset.taxonomy.head("disease").codes
        for n, thumb in zip(view.inspection.neighbours, view.neighbour_thumbs, strict=True):
            b = QToolButton()
            b.setObjectName(f"neighbour_{n.index}")
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            b.setIcon(QPixmap.fromImage(to_qimage(thumb)))
            b.setIconSize(QSize(84, 84))
            label = codes[n.label] if n.label >= 0 else "?"
            b.setText(f"{'✓' if n.shares_label else '✗'} {label}\nsim {n.similarity:.2f}")
            b.setToolTip(dataset.display_name(n.index))
            b.setStyleSheet("color: #1e8449;" if n.shares_label else "color: #922b21;")
            b.clicked.connect(lambda _c=False, i=n.index: self.photo_requested.emit(i))
            self.neighbour_row.addWidget(b)
            self.neighbour_buttons.append(b)

