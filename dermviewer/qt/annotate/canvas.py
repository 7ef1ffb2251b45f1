"""The outline editor: the photo with the lesion mask over it and its box; brush, eraser, polygon and box tools;
under the mask, optionally, the model's explanation (LSM attention map and selected tokens).

Edits are made on a working copy of the mask and handed out as a whole :class:`Outline` when a stroke ends
(mouse release, polygon closed), so one stroke is one saved, undoable edit. A canvas that is not ``editable``
(reviewing someone else's outline) ignores the mouse.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from dermviewer.qt.convert import to_qimage
from dermviewer.state.annotate.outline import Outline, polygon_mask
from dermviewer.state.overlays import OverlayLayer

__all__ = ["TOOLS", "OutlineCanvas"]

TOOLS = ("brush", "erase", "polygon", "box")


class OutlineCanvas(QWidget):
    outline_edited = Signal(object)  # Outline | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("annotate_canvas")
        self.setMinimumSize(360, 360)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the panel
        self.tool, self.brush_radius = "brush", 8
        self._pixmap: QPixmap | None = None
        self._size = (0, 0)  # photo (h, w)
        self._mask: np.ndarray | None = None
        self._overlay: QImage | None = None
        self._box: tuple[int, int, int, int] | None = None
        self._poly: list[tuple[float, float]] = []
        self._drag_start: tuple[float, float] | None = None
        self._stroking = False
        self.editable = True
        self.model_rgba: np.ndarray | None = None  # the explanation map as drawn (display-resolution RGBA)
        self.model_boxes: tuple[tuple[float, float, float, float], ...] = ()  # selected tokens, photo pixels
        self.model_opacity = 0.5
        self._model_image: QImage | None = None

    # -- content --------------------------------------------------------------------------------------
    def set_photo(self, rgb: np.ndarray | None, outline: Outline | None) -> None:
        self._pixmap = None if rgb is None else QPixmap.fromImage(to_qimage(rgb))
        self._size = (0, 0) if rgb is None else rgb.shape[:2]
        self._poly = []
        self.set_model_overlay(None)  # a photo's explanation never stays drawn over the next one
        self.set_outline(outline)

    def set_model_overlay(self, layers: tuple[OverlayLayer, ...] | list[OverlayLayer] | None,
                          image_size: tuple[int, int] | None = None, colormap: str = "jet",
                          opacity: float = 0.5) -> None:
        """Draw these layers (None: none) of a photo of ``image_size`` (h, w; default the photo shown)."""
        self.model_rgba, self._model_image, self.model_boxes = None, None, ()
        self.model_opacity = opacity
        h, w = self._size
        if layers and h:
            ih, iw = image_size or (h, w)
            sx, sy = w / iw, h / ih  # boxes are in the explained photo's pixels
            boxes: list[tuple[float, float, float, float]] = []
            for layer in layers:
                rgba = layer.rgba((h, w), colormap)
                if rgba is not None:
                    self.model_rgba = rgba
                    self._model_image = to_qimage(rgba)
                boxes += [(x * sx, y * sy, bw * sx, bh * sy) for x, y, bw, bh in layer.boxes]
            self.model_boxes = tuple(boxes)
        self.update()

    def set_outline(self, outline: Outline | None) -> None:
        h, w = self._size
        mask = outline.mask() if outline is not None else np.zeros((h, w), bool)
        if mask.shape != (h, w) and h and w:
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        self._mask = mask
        self._box = outline.box if outline is not None else None
        self._update_overlay()

    def _update_overlay(self) -> None:
        if self._mask is None or not self._mask.size:
            self._overlay = None
        else:
            rgba = np.zeros((*self._mask.shape, 4), np.uint8)
            rgba[self._mask] = (0, 200, 255, 90)
            self._overlay = to_qimage(rgba)
        self.update()

    def current_outline(self) -> Outline | None:
        if self._mask is None or not self._size[0]:
            return None
        if not self._mask.any():
            return Outline.from_box(self._box, self._size) if self._box is not None else None
        return Outline.from_mask(self._mask)

    # -- geometry -------------------------------------------------------------------------------------
    def _target(self) -> QRectF:
        h, w = self._size
        if not h:
            return QRectF()
        s = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def _to_photo(self, p: QPointF) -> tuple[float, float]:
        t = self._target()
        s = t.width() / self._size[1]
        return (p.x() - t.x()) / s, (p.y() - t.y()) / s

    # -- drawing --------------------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1e1e1e"))
        if self._pixmap is None:
            p.setPen(QColor("#aaaaaa"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Open an annotation project")
            return
        t = self._target()
        p.drawPixmap(t, self._pixmap, QRectF(self._pixmap.rect()))
        s = t.width() / self._size[1]
        if self._model_image is not None:
            p.setOpacity(self.model_opacity)
            p.drawImage(t, self._model_image)
            p.setOpacity(1.0)
        if self.model_boxes:
            p.setPen(QPen(QColor(255, 255, 255, 200), 1))
            for x, y, bw, bh in self.model_boxes:
                p.drawRect(QRectF(t.x() + x * s, t.y() + y * s, bw * s, bh * s))
        if self._overlay is not None:
            p.drawImage(t, self._overlay)
        if self._box is not None:
            x0, y0, x1, y1 = self._box
            p.setPen(QPen(QColor("#ffd400"), 2))
            p.drawRect(QRectF(t.x() + x0 * s, t.y() + y0 * s, (x1 - x0) * s, (y1 - y0) * s))
        if self._poly:
            p.setPen(QPen(QColor("#ff4fd8"), 2))
            pts = [QPointF(t.x() + x * s, t.y() + y * s) for x, y in self._poly]
            for a, b in itertools.pairwise(pts):
                p.drawLine(a, b)
            for q in pts:
                p.drawEllipse(q, 3, 3)

    # -- tools ----------------------------------------------------------------------------------------
    def _paint_at(self, x: float, y: float) -> None:
        if self._mask is None:
            return
        m = self._mask.astype(np.uint8)
        cv2.circle(m, (round(x), round(y)), self.brush_radius, 1 if self.tool == "brush" else 0, -1)
        self._mask = m.astype(bool)
        self._update_overlay()

    def _finish(self) -> None:
        out = self.current_outline()
        if out is not None and out.mask_png is not None:
            self._box = out.box  # the box follows the mask
        self.outline_edited.emit(out)
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._pixmap is None or not self.editable:
            return
        x, y = self._to_photo(event.position())
        if self.tool in ("brush", "erase"):
            self._stroking = True
            self._paint_at(x, y)
        elif self.tool == "polygon":
            if event.button() == Qt.MouseButton.RightButton or (len(self._poly) >= 3 and event.type()
                                                                 == QMouseEvent.Type.MouseButtonDblClick):
                self.close_polygon()
            else:
                self._poly.append((x, y))
                self.update()
        elif self.tool == "box":
            self._drag_start = (x, y)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.editable and self.tool == "polygon" and len(self._poly) >= 3:
            self.close_polygon()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._stroking:
            self._paint_at(*self._to_photo(event.position()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._stroking:
            self._stroking = False
            self._finish()
        elif self.editable and self.tool == "box" and self._drag_start is not None:
            (x0, y0), (x1, y1) = self._drag_start, self._to_photo(event.position())
            self._drag_start = None
            h, w = self._size
            box = (max(0, int(min(x0, x1))), max(0, int(min(y0, y1))), min(w, int(max(x0, x1)) + 1),
                   min(h, int(max(y0, y1)) + 1))
            if box[2] > box[0] and box[3] > box[1]:
                self._box = box
                if self._mask is not None and not self._mask.any():
                    self.outline_edited.emit(Outline.from_box(box, self._size))
                else:
                    out = self.current_outline()
                    if out is not None:
                        self.outline_edited.emit(Outline(out.width, out.height, out.mask_png, out.polygons, box))
                self.update()

    def close_polygon(self) -> None:
        """Add the polygon drawn so far to the mask (the outline becomes mask | polygon)."""
        if len(self._poly) >= 3 and self._mask is not None:
            self._mask = self._mask | polygon_mask([self._poly], self._size)
            self._poly = []
            self._update_overlay()
            self._finish()
