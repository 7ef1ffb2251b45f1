"""numpy arrays <-> QImage. QImages (unlike QPixmaps) may be built in worker threads."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap

__all__ = ["image_pyramid", "to_qimage", "to_qpixmap"]


def to_qimage(arr: np.ndarray) -> QImage:
    """HxWx3 RGB or HxWx4 RGBA uint8 -> an owning QImage (the numpy buffer may be freed afterwards)."""
    a = np.ascontiguousarray(arr)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected HxWx3/4 uint8, got {a.dtype} {a.shape}")
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(a.data, w, h, a.strides[0], fmt).copy()


def to_qpixmap(arr: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(arr))


def image_pyramid(arr: np.ndarray, min_side: int = 384) -> list[QImage]:
    """Full resolution, then halves (area-averaged) down to ``min_side``: zoomed-out views of a 4000x3000
    photo draw a small level instead of resampling 12 MP on every repaint."""
    import cv2

    levels = [to_qimage(arr)]
    cur = arr
    while max(cur.shape[:2]) // 2 >= min_side:
        cur = cv2.resize(cur, (cur.shape[1] // 2, cur.shape[0] // 2), interpolation=cv2.INTER_AREA)
        levels.append(to_qimage(cur))
    return levels
