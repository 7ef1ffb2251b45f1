"""Overlay layers as arrays the canvas only has to draw: LSM attention, LSM-selected token boxes, Grad-CAM.

The LSM (Lesion Selection Module, DermImitFormer Eq. 1) scores every token of the model's grid and keeps
the top-k as the model's "zoom-in"; the canvas shows both the score map and the kept tokens as boxes.
Maps are colour-mapped at a modest display resolution and stretched over the photo by the canvas: a
grid map carries no detail beyond that, and a 4000x3000 RGBA layer would cost 48 MB per redraw.

The LSM map, the token boxes and the colouring are computed here with numpy and OpenCV, by the rules of
``engine.explain.lsm`` / ``engine.explain.overlay`` (tests/dermviewer/qt/test_startup_overlays.py holds
them equal): ``engine.explain`` imports torch at module level, and the first differential must be drawn
without torch (issue 14). Only Grad-CAM imports ``engine.explain``, when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np

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
    "hex_rgb",
    "lsm_map",
    "solid",
    "token_boxes",
]

COLORMAPS = {n.removeprefix("COLORMAP_").lower(): getattr(cv2, n) for n in dir(cv2) if n.startswith("COLORMAP_")}
LSM_HEADS = ("disease", "attributes")
COLORMAP_CHOICES = tuple(c for c in ("jet", "turbo", "viridis", "inferno", "magma", "hot") if c in COLORMAPS)
DISPLAY_MAX = 768


class OverlayKind(Enum):
    LSM = "lsm"
    TOKENS = "tokens"
    GRADCAM = "gradcam"
    LESION = "lesion"


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
    lesion: bool = True  # the lesion finder's outlines and boxes
    lesion_colour: str = "#00ff00"
    lesion_opacity: float = 0.9

    def enabled(self, kind: OverlayKind) -> bool:
        return bool(getattr(self, kind.value))

    def opacity_of(self, kind: OverlayKind) -> float:
        return self.lesion_opacity if kind is OverlayKind.LESION else self.opacity


@dataclass(frozen=True)
class OverlayLayer:
    """A float map on the token grid (any size, stretched to the photo) or boxes in photo pixels.

    Maps stay uncoloured here so changing the colormap is a cheap redraw, not a recomputation.
    """

    kind: OverlayKind
    values: np.ndarray | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    label: str = ""
    colour: str | None = None  # "#rrggbb": values are drawn in this one colour (outlines), not colour-mapped

    def rgba(self, image_size: tuple[int, int], colormap: str) -> np.ndarray | None:
        if self.values is None:
            return None
        if self.colour is not None:
            return solid(self.values, image_size, self.colour)
        return colorize(self.values, image_size, colormap)


def _display_size(image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = image_size
    s = min(1.0, DISPLAY_MAX / max(h, w, 1))
    return max(1, round(h * s)), max(1, round(w * s))


def colorize(map_float: np.ndarray, image_size: tuple[int, int], colormap: str = "jet") -> np.ndarray:
    """Map -> (h, w, 4) uint8 RGBA at display resolution for a photo of ``image_size`` (engine.explain.overlay).

    Alpha follows the normalised score, so low-attention areas leave the photo visible under the colour.
    """
    h, w = _display_size(image_size)
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    m = np.asarray(map_float, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {m.shape}")
    u8 = cv2.resize(cv2.convertScaleAbs(_normalize(m), alpha=255.0), (w, h), interpolation=cv2.INTER_LINEAR)
    layer = cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGBA)
    layer[..., 3] = u8
    return layer


def hex_rgb(colour: str) -> tuple[int, int, int]:
    text = colour.strip().lstrip("#")
    if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def solid(values: np.ndarray, image_size: tuple[int, int], colour: str) -> np.ndarray:
    """A [0, 1] map -> (h, w, 4) RGBA at display resolution in one colour, alpha = the value (outlines)."""
    h, w = _display_size(image_size)
    m = np.clip(np.nan_to_num(np.asarray(values, np.float32)), 0.0, 1.0)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {m.shape}")
    if m.shape != (h, w):
        m = np.asarray(cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST), np.float32)
    layer = np.zeros((h, w, 4), np.uint8)
    layer[..., :3] = hex_rgb(colour)
    layer[..., 3] = np.round(m * 255).astype(np.uint8)
    return layer


def _normalize(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (``engine.explain.lsm.normalize_map``): constant -> zeros, NaN/inf -> 0."""
    m = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if m.size == 0:
        return m
    lo, hi = float(m.min()), float(m.max())
    return np.zeros_like(m) if hi - lo <= 1e-12 else (m - lo) / (hi - lo)


def lsm_map(prediction: Prediction, head: str) -> OverlayLayer | None:
    if head not in prediction.lsm:
        return None
    scores = np.asarray(prediction.lsm[head], dtype=np.float32)
    gh, gw = (int(v) for v in prediction.grid_size)
    if scores.size != gh * gw:
        raise ValueError(f"{scores.size} scores do not fill a {gh}x{gw} token grid")
    values = _normalize(scores.reshape(gh, gw))
    return OverlayLayer(OverlayKind.LSM, values=values, label=f"LSM attention ({head})")


def _token_box(index: int, grid: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``engine.explain.lsm.token_box``: end-exclusive (x0, y0, x1, y1) of row-major token ``index``."""
    gh, gw = int(grid[0]), int(grid[1])
    h, w = int(image_size[0]), int(image_size[1])
    if not 0 <= index < gh * gw:
        raise ValueError(f"token index {index} is outside a {gh}x{gw} grid")
    r, c = divmod(int(index), gw)
    return (round(c * w / gw), round(r * h / gh), round((c + 1) * w / gw), round((r + 1) * h / gh))


def token_boxes(prediction: Prediction, head: str, image_size: tuple[int, int]) -> OverlayLayer | None:
    """The LSM-selected tokens as (x, y, w, h) rectangles in photo pixels."""
    indices = prediction.selected.get(head)
    if indices is None:
        return None
    boxes = tuple((float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                  for x0, y0, x1, y1 in (_token_box(int(i), prediction.grid_size, image_size)
                                         for i in np.asarray(indices).reshape(-1)))
    return OverlayLayer(OverlayKind.TOKENS, boxes=boxes, label=f"LSM-selected tokens ({head})")


def gradcam_map(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> OverlayLayer:
    """Grad-CAM of class ``index`` of ``head`` on ``rgb``; ``model`` is the torch module of ``bundle``."""
    cam = _gradcam(model, bundle, rgb, head, index)
    name = bundle.taxonomy.head(head).classes[index].name
    return OverlayLayer(OverlayKind.GRADCAM, values=cam, label=f"Grad-CAM: {name}")


def _gradcam(model: Any, bundle: Any, rgb: np.ndarray, head: str, index: int) -> np.ndarray:
    from engine.explain import grad_cam  # imports torch: only once Grad-CAM is asked for

    return grad_cam(model, preprocess(rgb, bundle.preprocess), head, index)
