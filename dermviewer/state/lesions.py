"""The lesion finder in the app (issue 15): found lesions per photo, their outline layer, and the lesion crop.

:class:`LesionHost` owns the :class:`engine.lesions.LesionFinder` (ONNX Runtime, no torch), opened on first
use on a worker thread; a missing or broken finder file turns the feature off with its reason
(:attr:`LesionHost.error`), never the photo's differential.

:func:`lesion_layer` turns a :class:`~engine.lesions.LesionMap` into one overlay layer: the outline of each
found lesion in one solid colour (the user's; opacity their own) with its box, drawn at display resolution.
In a lesion view (the differential is of the crop around one lesion) the layer is in the crop's frame.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from dermviewer.state.overlays import DISPLAY_MAX, OverlayKind, OverlayLayer
from engine.errors import DermViewerError
from engine.lesions import LesionFinder, LesionMap, default_finder_path

__all__ = ["LESION_COLOURS", "LesionHost", "lesion_layer"]

LESION_COLOURS = ("#00ff00", "#ffff00", "#00ffff", "#ff00ff", "#ffffff")


class LesionHost:
    """Thread-safe lazy lesion finder; ``threads`` is its ONNX Runtime budget."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else default_finder_path()
        self.threads = threads
        self.error: str | None = None if self.path.is_file() else f"no lesion finder at {self.path}"
        self._finder: LesionFinder | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.error is None

    def finder(self) -> LesionFinder | None:
        with self._lock:
            if self._finder is None and self.error is None:
                try:
                    self._finder = LesionFinder(self.path, threads=self.threads)
                except DermViewerError as exc:
                    self.error = str(exc)
            return self._finder

    def find(self, image: np.ndarray) -> LesionMap | None:
        """The photo's lesions, or None when the finder is off (``error`` says why)."""
        finder = self.finder()
        return None if finder is None else finder.find(image)


def lesion_layer(lesions: LesionMap, image_size: tuple[int, int], colour: str,
                 rect: tuple[int, int, int] | None = None, chosen: int | None = None) -> OverlayLayer | None:
    """Outline and box of every found lesion; ``rect`` ``(left, top, side)`` puts them in a crop's frame,
    ``chosen`` draws that lesion thicker. None when no lesion was found."""
    if not lesions.found:
        return None
    h, w = image_size
    scale = min(1.0, DISPLAY_MAX / max(h, w, 1))
    dh, dw = max(1, round(h * scale)), max(1, round(w * scale))
    canvas = np.zeros((dh, dw), np.float32)
    boxes = []
    for k, les in enumerate(lesions.lesions):
        mask = les.mask
        x0, y0, x1, y1 = les.box
        if rect is not None:
            left, top, side = rect
            mask = mask[top:top + side, left:left + side]
            x0, y0, x1, y1 = x0 - left, y0 - top, x1 - left, y1 - top
            if x1 <= 0 or y1 <= 0 or x0 >= side or y0 >= side:
                continue  # another lesion, outside this crop
        small = cv2.resize(mask.astype(np.uint8), (dw, dh), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, 1.0, 3 if k == chosen else 2)
        boxes.append((float(max(x0, 0)), float(max(y0, 0)), float(min(x1, w) - max(x0, 0)),
                      float(min(y1, h) - max(y0, 0))))
    n = len(lesions.lesions)
    return OverlayLayer(OverlayKind.LESION, canvas, tuple(boxes), f"lesion outline ({n} found)", colour=colour)
