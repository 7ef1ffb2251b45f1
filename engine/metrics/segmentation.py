"""Segmentation figures of a lesion mask against a reference mask (issue 15).

- :func:`dice`, :func:`iou`: overlap of two binary masks; both empty counts as a perfect 1.0.
- :func:`boundary_f`: the boundary F-score (Csurka et al., 2013; the BF score of the DAVIS benchmark): the
  outline pixels of each mask within a tolerance of the other's outline, precision and recall combined. The
  tolerance is 0.75 % of the image diagonal unless given, so it means the same on a 300 px and a 4000 px photo.
- :func:`mask_box`, :func:`main_component`, :func:`box_iou`: the box of the photo's main lesion (the largest
  connected region) and the overlap of two boxes, as a detector is scored.

Boxes are ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "BOUNDARY_TOLERANCE",
    "Box",
    "SegmentationScore",
    "boundary_f",
    "box_iou",
    "dice",
    "iou",
    "main_component",
    "mask_box",
    "segmentation_score",
]

BOUNDARY_TOLERANCE = 0.0075  # of the image diagonal
Box = tuple[int, int, int, int]
Mask = npt.NDArray[np.bool_]


def _pair(pred: npt.ArrayLike, ref: npt.ArrayLike) -> tuple[Mask, Mask]:
    p, r = np.asarray(pred).astype(bool), np.asarray(ref).astype(bool)
    if p.shape != r.shape or p.ndim != 2:
        raise ValueError(f"masks must be 2-D and of one shape, got {p.shape} and {r.shape}")
    return p, r


def dice(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    p, r = _pair(pred, ref)
    total = int(p.sum()) + int(r.sum())
    return 1.0 if total == 0 else 2.0 * int((p & r).sum()) / total


def iou(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    p, r = _pair(pred, ref)
    union = int((p | r).sum())
    return 1.0 if union == 0 else int((p & r).sum()) / union


def _outline(mask: Mask) -> Mask:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)) > 0


def boundary_f(pred: npt.ArrayLike, ref: npt.ArrayLike, tolerance: float | None = None) -> float:
    """Boundary F-score; ``tolerance`` in pixels (default: :data:`BOUNDARY_TOLERANCE` of the diagonal)."""
    p, r = _pair(pred, ref)
    if not p.any() and not r.any():
        return 1.0
    if not p.any() or not r.any():
        return 0.0
    tol = tolerance if tolerance is not None else BOUNDARY_TOLERANCE * float(np.hypot(*p.shape))
    tol = max(1.0, tol)
    bp, br = _outline(p), _outline(r)
    # distance of every pixel to the nearest outline pixel of the other mask
    dist_r = cv2.distanceTransform((~br).astype(np.uint8), cv2.DIST_L2, 3)
    dist_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((dist_r[bp] <= tol).mean())
    recall = float((dist_p[br] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def main_component(mask: npt.ArrayLike) -> Mask:
    """The largest 8-connected region of a mask (all False when the mask is empty)."""
    m = np.asarray(mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(m.shape, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def mask_box(mask: npt.ArrayLike) -> Box | None:
    """The tight box around a mask's True pixels, or None for an empty mask."""
    m = np.asarray(mask).astype(bool)
    ys, xs = np.nonzero(m)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_iou(a: Box | None, b: Box | None) -> float:
    """Intersection over union of two boxes; 0 when either is missing."""
    if a is None or b is None:
        return 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union <= 0 else inter / union


@dataclass(frozen=True)
class SegmentationScore:
    dice: float
    iou: float
    boundary_f: float
    box_iou: float  # main lesion of the prediction against main lesion of the reference

    def as_dict(self) -> dict[str, float]:
        return {"dice": self.dice, "iou": self.iou, "boundary_f": self.boundary_f, "box_iou": self.box_iou}


def segmentation_score(pred: npt.ArrayLike, ref: npt.ArrayLike) -> SegmentationScore:
    p, r = _pair(pred, ref)
    return SegmentationScore(dice(p, r), iou(p, r), boundary_f(p, r),
                             box_iou(mask_box(main_component(p)), mask_box(main_component(r))))
