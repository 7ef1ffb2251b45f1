"""Explanation maps as image-sized RGBA layers, and the LSM overlay the CLI writes (``--overlay``).

``overlay`` returns a *layer*, not a composite: RGB is the colour-mapped map, A is ``alpha``
(optionally scaled by the map value), so the viewer can stack it over the photo and change alpha or
hide it without recomputing; ``blend`` composites a layer for files and reports.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.errors import ModelConfigError
from engine.explain.lsm import lsm_map, normalize_map, selected_boxes
from engine.prediction import Prediction

__all__ = ["COLORMAPS", "blend", "draw_boxes", "draw_outline", "lsm_overlay_image", "overlay"]

COLORMAPS = {
    name.removeprefix("COLORMAP_").lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}
"""OpenCV colour maps by lower-case name: ``jet``, ``viridis``, ``inferno``, ``magma``, ``turbo``, ..."""


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    colormap: str = "jet",
    alpha: float = 0.5,
    *,
    normalize: bool = True,
    alpha_from_map: bool = False,
) -> np.ndarray:
    """An ``(H, W, 4)`` uint8 RGBA layer of ``image``'s size showing ``heatmap``.

    The map (any shape, e.g. the 24x24 token grid or a 384x384 CAM) is resized bilinearly to the
    image; ``normalize`` min-max scales it first (else it is clipped to [0, 1]). With
    ``alpha_from_map`` the layer is transparent where the map is low, so only hot regions tint.
    """
    _check_rgb(image)
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    m = np.asarray(heatmap, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {m.shape}")
    m = normalize_map(m) if normalize else np.clip(np.nan_to_num(m), 0.0, 1.0)
    h, w = image.shape[:2]
    # Quantise the small map to uint8 first, then resize bilinearly: 6x faster than resizing floats on a
    # 3-megapixel photo, and 1/255 steps are below what a colour map can show.
    u8 = cv2.resize(cv2.convertScaleAbs(m, alpha=255.0), (w, h), interpolation=cv2.INTER_LINEAR)
    layer = cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGBA)
    layer[..., 3] = cv2.convertScaleAbs(u8, alpha=alpha) if alpha_from_map else round(alpha * 255.0)
    return layer


def blend(image: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Composite an RGBA ``layer`` over an RGB ``image`` of the same size -> RGB uint8."""
    _check_rgb(image)
    if layer.shape[:2] != image.shape[:2] or layer.ndim != 3 or layer.shape[2] != 4:
        raise ValueError(f"layer {layer.shape} does not match image {image.shape}")
    rgb, a = np.ascontiguousarray(image[..., :3]), layer[..., 3]
    lo, hi = int(a.min()), int(a.max())
    if lo == hi:  # uniform alpha: one fused OpenCV pass
        return cv2.addWeighted(rgb, 1.0 - lo / 255.0, np.ascontiguousarray(layer[..., :3]), lo / 255.0, 0.0)
    wa = a.astype(np.float32) / 255.0
    return cv2.blendLinear(rgb, np.ascontiguousarray(layer[..., :3]), 1.0 - wa, wa)


def draw_boxes(
    image: np.ndarray, boxes: list[tuple[int, int, int, int]], color: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """A copy of ``image`` with end-exclusive ``(x0, y0, x1, y1)`` boxes outlined."""
    _check_rgb(image)
    out = np.ascontiguousarray(image[..., :3]).copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, thickness)
    return out


def lsm_overlay_image(
    image: np.ndarray,
    prediction: Prediction,
    head: str = "disease",
    *,
    colormap: str = "jet",
    alpha: float = 0.45,
    box_color: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """The photo with the LSM score map blended in and the selected tokens outlined (Fig. 4a) -> RGB uint8."""
    if head not in prediction.lsm:
        raise ModelConfigError(f"this model has no Lesion Selection Module output for head {head!r}")
    h, w = image.shape[:2]
    layer = overlay(image, lsm_map(prediction, head=head), colormap, alpha)
    boxes = selected_boxes(prediction.selected.get(head, []), prediction.grid_size, (h, w))
    return draw_boxes(blend(image, layer), boxes, box_color)


def draw_outline(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    thickness: int | None = None,
) -> np.ndarray:
    """The outline of every region of a boolean ``mask`` (the photo's frame) drawn on a copy of ``image``;
    ``thickness`` defaults to 0.4 % of the photo's longer side (at least 1 px)."""
    _check_rgb(image)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} is not of the photo's frame {image.shape[:2]}")
    width = thickness if thickness is not None else max(1, round(0.004 * max(image.shape[:2])))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(image.copy())
    cv2.drawContours(out, contours, -1, color, width, lineType=cv2.LINE_AA)
    return out
