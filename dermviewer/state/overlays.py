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

import numpy as np

from engine.explain import COLORMAPS, grad_cam, overlay, selected_boxes
from engine.explain import lsm_map as engine_lsm_map
from engine.prediction import Prediction
from engine.preprocess import preprocess

__all__ = [
    "COLORMAPS",
    "COLORMAP_CHOICES",
    "LSM_HEADS",
    "OverlayKind",
    "OverlayLayer",
    "OverlaySettings",
    "colorize",
    "gradcam_map",
    "lsm_map",
    "token_boxes",
]

LSM_HEADS = ("disease", "attributes")
COLORMAP_CHOICES = tuple(c for c in ("jet", "turbo", "viridis", "inferno", "magma", "hot") if c in COLORMAPS)
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


def colorize(map_float: np.ndarray, image_size: tuple[int, int], colormap: str = "jet") -> np.ndarray:
    """Map -> (h, w, 4) uint8 RGBA at display resolution for a photo of ``image_size`` (engine.explain.overlay).

    Alpha follows the normalised score, so low-attention areas leave the photo visible under the colour.
    """
    h, w = _display_size(image_size)
    return overlay(np.zeros((h, w, 3), np.uint8), map_float, colormap, alpha=1.0, alpha_from_map=True)


def lsm_map(prediction: Prediction, head: str) -> OverlayLayer | None:
    if head not in prediction.lsm:
        return None
    values = engine_lsm_map(prediction, head=head, normalize=True)
    return OverlayLayer(OverlayKind.LSM, values=values, label=f"LSM attention ({head})")


def token_boxes(prediction: Prediction, head: str, image_size: tuple[int, int]) -> OverlayLayer | None:
    """The LSM-selected tokens as (x, y, w, h) rectangles in photo pixels."""
    indices = prediction.selected.get(head)
    if indices is None:
        return None
    boxes = tuple((float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                  for x0, y0, x1, y1 in selected_boxes(indices, prediction.grid_size, image_size))
    return OverlayLayer(OverlayKind.TOKENS, boxes=boxes, label=f"LSM-selected tokens ({head})")


def gradcam_map(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> OverlayLayer:
    """Grad-CAM of class ``index`` of ``head`` on ``rgb``; ``model`` is the torch module of ``bundle``."""
    cam = _gradcam(model, bundle, rgb, head, index)
    name = bundle.taxonomy.head(head).classes[index].name
    return OverlayLayer(OverlayKind.GRADCAM, values=cam, label=f"Grad-CAM: {name}")


def _gradcam(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> np.ndarray:
    return grad_cam(model, preprocess(rgb, bundle.preprocess), head, index)
