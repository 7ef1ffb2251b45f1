"""Overlay layers as arrays the canvas only has to draw: LSM attention, LSM-selected token boxes, Grad-CAM.

The LSM (Lesion Selection Module, DermImitFormer Eq. 1) scores every token of the model's grid and keeps
the top-k as the model's "zoom-in"; the canvas shows both the score map and the kept tokens as boxes.
Maps are colour-mapped at a modest display resolution and stretched over the photo by the canvas: a
grid map carries no detail beyond that, and a 4000x3000 RGBA layer would cost 48 MB per redraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np

from engine.prediction import Prediction

__all__ = [
    "COLORMAPS",
    "LSM_HEADS",
    "OverlayKind",
    "OverlayLayer",
    "OverlaySettings",
    "colorize",
    "gradcam_map",
    "lsm_map",
    "token_boxes",
]

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "hot": cv2.COLORMAP_HOT,
}
LSM_HEADS = ("disease", "attributes")
DISPLAY_MAX = 768


class OverlayKind(Enum):
    LSM = "lsm"
    TOKENS = "tokens"
    GRADCAM = "gradcam"


@dataclass
class OverlaySettings:
    """What the user chose to see; the canvas and the report both read it."""

    lsm: bool = True
    tokens: bool = True
    gradcam: bool = False
    split: bool = False
    split_position: float = 0.5
    lsm_head: str = "disease"
    opacity: float = 0.5
    colormap: str = "jet"

    def enabled(self, kind: OverlayKind) -> bool:
        return bool(getattr(self, kind.value))


@dataclass(frozen=True)
class OverlayLayer:
    """A float map on the token grid (any size, stretched to the photo) or boxes in photo pixels.

    Maps stay uncoloured here so changing the colormap is a cheap redraw, not a recomputation.
    """

    kind: OverlayKind
    values: np.ndarray | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    label: str = ""

    def rgba(self, image_size: tuple[int, int], colormap: str) -> np.ndarray | None:
        return None if self.values is None else colorize(self.values, image_size, colormap)


def _display_size(image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = image_size
    s = min(1.0, DISPLAY_MAX / max(h, w, 1))
    return max(1, round(h * s)), max(1, round(w * s))


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float32)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def colorize(map_float: np.ndarray, image_size: tuple[int, int], colormap: str = "jet") -> np.ndarray:
    """Min-max normalised map -> (h, w, 4) uint8 RGBA at display resolution of a photo of ``image_size``."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    h, w = _display_size(image_size)
    up = cv2.resize(_normalise(map_float), (w, h), interpolation=cv2.INTER_CUBIC)
    u8 = np.clip(up * 255.0 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, COLORMAPS[colormap])
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = bgr[..., ::-1]
    rgba[..., 3] = 255
    return rgba


def lsm_map(prediction: Prediction, head: str) -> OverlayLayer | None:
    grid = prediction.lsm.get(head)
    if grid is None:
        return None
    return OverlayLayer(OverlayKind.LSM, values=np.asarray(grid, np.float32), label=f"LSM attention ({head})")


def token_boxes(prediction: Prediction, head: str, image_size: tuple[int, int]) -> OverlayLayer | None:
    """The LSM-selected tokens as (x, y, w, h) rectangles in photo pixels."""
    indices = prediction.selected.get(head)
    if indices is None:
        return None
    try:
        from engine.explain import selected_boxes
    except ImportError:
        selected_boxes = None
    boxes: list[tuple[float, float, float, float]]
    if selected_boxes is not None:
        boxes = [tuple(map(float, b)) for b in selected_boxes(indices, prediction.grid_size, image_size)]  # type: ignore[misc]
    else:
        gh, gw = prediction.grid_size
        h, w = image_size
        bw, bh = w / gw, h / gh
        boxes = [((i % gw) * bw, (i // gw) * bh, bw, bh) for i in indices]
    return OverlayLayer(OverlayKind.TOKENS, boxes=tuple(boxes), label=f"LSM-selected tokens ({head})")


def gradcam_map(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> OverlayLayer:
    """Grad-CAM of class ``index`` of ``head`` on ``rgb``; ``model`` is the torch module of ``bundle``."""
    cam = _gradcam(model, bundle, rgb, head, index)
    name = bundle.taxonomy.head(head).classes[index].name
    return OverlayLayer(OverlayKind.GRADCAM, values=cam, label=f"Grad-CAM: {name}")


def _gradcam(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> np.ndarray:
    from dermviewer.state._gradcam_fallback import token_gradcam

    return token_gradcam(model, bundle.preprocess, rgb, head, index, bundle.model_config.grid_size)
