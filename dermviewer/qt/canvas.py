"""The photo canvas: zoom, pan, fit, 1:1, with overlay layers and a photo-vs-overlay split.

Large photos stay smooth because the photo item draws from an image pyramid (the smallest level that
still has a pixel per screen pixel) and only the exposed part of it; heat maps are small images
stretched over the photo. Overlays are children of a clipping item, so the split view is one clip rect.

A large JPEG arrives decoded at the size a fitted view needs (``engine.imageio.DISPLAY_MAX_SIDE``); scene
units stay that image's pixels (overlays are placed in them). :meth:`ImageCanvas.set_native_size` tells the
canvas the photo's real size, so 1:1 means one *photo* pixel per screen pixel, and
:meth:`ImageCanvas.set_detail` adds the full-resolution pixels, drawn only when zoomed in past the
decoded image (``dermviewer.qt.full_resolution`` loads them then).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from dermviewer.qt.convert import to_qpixmap
from dermviewer.state.overlays import OverlayKind, OverlayLayer, OverlaySettings

__all__ = ["ImageCanvas", "PyramidPhotoItem"]

BOX_COLOUR = QColor(0, 255, 255)
SPLIT_COLOUR = QColor(255, 255, 255)


class PyramidPhotoItem(QGraphicsItem):
    def __init__(self) -> None:
        super().__init__()
        self.levels: list[QImage] = []
        self.detail: QImage | None = None  # full-resolution pixels, larger than levels[0], when zoomed in
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def set_levels(self, levels: list[QImage]) -> None:
        self.prepareGeometryChange()
        self.levels = levels
        self.detail = None
        self.update()

    def set_detail(self, image: QImage | None) -> None:
        self.detail = image
        self.update()

    def boundingRect(self) -> QRectF:
        if not self.levels:
            return QRectF()
        return QRectF(0, 0, self.levels[0].width(), self.levels[0].height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.levels:
            return
        full_w = self.levels[0].width()
        scale = abs(painter.worldTransform().m11())
        level = self.levels[0]
        for img in self.levels:  # smallest level that still has >= 1 pixel per device pixel
            if img.width() >= full_w * scale:
                level = img
        if self.detail is not None and scale > 1.0:  # zoomed in past the decoded image: the real pixels
            level = self.detail
        f = level.width() / full_w
        exposed = option.exposedRect.intersected(self.boundingRect())  # type: ignore[attr-defined]
        src = QRectF(exposed.x() * f, exposed.y() * f, exposed.width() * f, exposed.height() * f)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 2.0)
        painter.drawImage(exposed, level, src)


class ImageCanvas(QGraphicsView):
    zoom_changed = Signal(float)

    MIN_ZOOM, MAX_ZOOM = 0.02, 32.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QColor(32, 34, 37))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.photo = PyramidPhotoItem()
        self.scene().addItem(self.photo)
        self.clip = QGraphicsRectItem()  # overlays live inside; its rect is the split
        self.clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.scene().addItem(self.clip)
        self.split_line = QGraphicsLineItem()
        pen = QPen(SPLIT_COLOUR, 2)
        pen.setCosmetic(True)
        self.split_line.setPen(pen)
        self.split_line.setZValue(10)
        self.scene().addItem(self.split_line)
        self._overlay_items: list[QGraphicsItem] = []
        self._fit_mode = True
        self.native_scale = 1.0  # photo pixels per scene unit (2.0 for a 12 MP JPEG decoded at half size)

    # -- content -----------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        r = self.photo.boundingRect()
        return int(r.height()), int(r.width())

    def set_photo(self, levels: list[QImage], keep_view: bool = False) -> None:
        same = levels and self.photo.levels and levels[0].size() == self.photo.levels[0].size()
        if not same:
            self.native_scale = 1.0
        self.photo.set_levels(levels)
        self.scene().setSceneRect(self.photo.boundingRect())
        if not (keep_view and same):
            self.fit()

    def set_native_size(self, width: int) -> None:
        """The photo's real width, when it was decoded smaller (1:1 and the detail level follow it)."""
        decoded = self.photo.levels[0].width() if self.photo.levels else 0
        self.native_scale = width / decoded if decoded and width > decoded else 1.0

    def set_detail(self, image: QImage) -> None:
        """Full-resolution pixels of the photo on screen (ignored if they do not fit its native size)."""
        if self.photo.levels and self.native_scale > 1.0 \
                and abs(image.width() - self.photo.levels[0].width() * self.native_scale) <= 1:
            self.photo.set_detail(image)

    def clear(self) -> None:
        self.photo.set_levels([])
        self.set_overlays([], OverlaySettings(lsm=False, tokens=False, gradcam=False))

    def set_overlays(self, layers: list[OverlayLayer], settings: OverlaySettings) -> None:
        for it in self._overlay_items:
            self.scene().removeItem(it)
        self._overlay_items.clear()
        rect = self.photo.boundingRect()
        h, w = int(rect.height()), int(rect.width())
        for z, layer in enumerate(layers):
            if not settings.enabled(layer.kind) or rect.isEmpty():
                continue
            if layer.values is not None:
                rgba = layer.rgba((h, w), settings.colormap)
                assert rgba is not None
                item = QGraphicsPixmapItem(to_qpixmap(rgba), self.clip)
                item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
                item.setTransform(QTransform.fromScale(w / rgba.shape[1], h / rgba.shape[0]))
                item.setOpacity(settings.opacity_of(layer.kind))
                item.setZValue(z)
                item.setData(0, layer.kind.value)
                self._overlay_items.append(item)
            for x, y, bw, bh in layer.boxes:
                box = QGraphicsRectItem(x, y, bw, bh, self.clip)
                pen = QPen(QColor(layer.colour) if layer.colour else BOX_COLOUR, 2)
                pen.setCosmetic(True)
                box.setPen(pen)
                box.setZValue(100)
                lesion = layer.kind is OverlayKind.LESION
                box.setData(0, (OverlayKind.LESION if lesion else OverlayKind.TOKENS).value)
                self._overlay_items.append(box)
        self._apply_split(settings)

    def overlay_kinds(self) -> list[str]:
        """Kinds of the items currently drawn (for tests and the status bar)."""
        return [str(it.data(0)) for it in self._overlay_items]

    def _apply_split(self, settings: OverlaySettings) -> None:
        rect = self.photo.boundingRect()
        if settings.split and not rect.isEmpty():
            x = rect.width() * min(max(settings.split_position, 0.0), 1.0)
            self.clip.setRect(QRectF(x, 0, rect.width() - x, rect.height()))
            self.split_line.setLine(x, 0, x, rect.height())
            self.split_line.setVisible(True)
        else:
            self.clip.setRect(rect)
            self.split_line.setVisible(False)

    # -- navigation --------------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        self._fit_mode = True
        rect = self.photo.boundingRect()
        if not rect.isEmpty():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        self._fit_mode = False
        self.setTransform(QTransform.fromScale(self.native_scale, self.native_scale))
        self.zoom_changed.emit(self.zoom)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        target = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        if self.zoom <= 0:
            return
        self._fit_mode = False
        f = target / self.zoom
        if anchor is None:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.scale(f, f)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.zoom_changed.emit(self.zoom)

    def zoom_in(self) -> None:
        self.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.zoom_by(0.8)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25**steps, event.position())
        event.accept()

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        if self._fit_mode:
            self.fit()

    def grab_array(self) -> np.ndarray:
        """The viewport as RGB, for checks that something was drawn."""
        img = self.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        ptr = img.constBits()
        arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
        return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()
