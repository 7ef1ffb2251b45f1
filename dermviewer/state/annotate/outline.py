"""A lesion outline: a binary mask (stored as PNG), optional polygons, and the lesion box derived from them
or drawn directly (the CNN/detection paper's lesion boxes).

Stored and audited like a label: the project keeps :meth:`Outline.to_json` and the audit log its
:meth:`Outline.summary`. Polygons are exported from the mask's contours when none were drawn (COCO).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["Box", "Outline", "box_of", "decode_png", "dice", "encode_png", "mask_polygons", "polygon_mask"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)
Polygon = list[tuple[float, float]]


def encode_png(mask: npt.NDArray[np.bool_]) -> bytes:
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 2-D array
        raise ValueError("cannot encode the mask as PNG")
    return bytes(buf)


def decode_png(data: bytes) -> npt.NDArray[np.bool_]:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise ValueError("not a PNG mask")
    return arr > 127


def box_of(mask: npt.NDArray[np.bool_]) -> Box | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def polygon_mask(polygons: list[Polygon], size: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Fill polygons into a ``(h, w)`` mask."""
    out = np.zeros(size, np.uint8)
    pts = [np.round(np.asarray(p, np.float64)).astype(np.int32) for p in polygons if len(p) >= 3]
    if pts:
        cv2.fillPoly(out, pts, 1)
    return out.astype(bool)


def mask_polygons(mask: npt.NDArray[np.bool_], min_area: float = 4.0) -> list[Polygon]:
    """Outer contours of the mask as polygons (COCO's ``segmentation``), simplified by one pixel."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys: list[Polygon] = []
    for c in contours:
        if cv2.contourArea(c) < min_area:
            continue
        c = cv2.approxPolyDP(c, 1.0, True)
        if len(c) >= 3:
            polys.append([(float(x), float(y)) for x, y in c[:, 0, :]])
    return polys


def dice(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    """Dice overlap of two masks; two empty masks agree fully."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


@dataclass(frozen=True)
class Outline:
    """``mask_png`` is None for a box-only outline; ``box`` is the mask's box unless drawn directly."""

    width: int
    height: int
    mask_png: bytes | None = None
    polygons: list[Polygon] = field(default_factory=list)
    box: Box | None = None

    @classmethod
    def from_mask(cls, mask: npt.NDArray[np.bool_], polygons: list[Polygon] | None = None) -> Outline:
        h, w = mask.shape
        return cls(width=int(w), height=int(h), mask_png=encode_png(mask), polygons=list(polygons or []),
                   box=box_of(mask))

    @classmethod
    def from_polygons(cls, polygons: list[Polygon], size: tuple[int, int]) -> Outline:
        return cls.from_mask(polygon_mask(polygons, size), polygons)

    @classmethod
    def from_box(cls, box: Box, size: tuple[int, int]) -> Outline:
        return cls(width=int(size[1]), height=int(size[0]), box=tuple(int(v) for v in box))  # type: ignore[arg-type]

    def mask(self) -> npt.NDArray[np.bool_]:
        if self.mask_png is not None:
            return decode_png(self.mask_png)
        out = np.zeros((self.height, self.width), bool)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            out[y0:y1, x0:x1] = True
        return out

    def area(self) -> int:
        return int(self.mask().sum())

    def export_polygons(self) -> list[Polygon]:
        if self.polygons:
            return self.polygons
        if self.mask_png is None and self.box is not None:
            x0, y0, x1, y1 = self.box
            return [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]]
        return mask_polygons(self.mask())

    def to_json(self) -> str:
        return json.dumps({
            "width": self.width, "height": self.height,
            "mask_png": None if self.mask_png is None else base64.b64encode(self.mask_png).decode("ascii"),
            "polygons": self.polygons, "box": self.box,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Outline:
        d = json.loads(text)
        png = d.get("mask_png")
        box = d.get("box")
        return cls(width=int(d["width"]), height=int(d["height"]),
                   mask_png=None if png is None else base64.b64decode(png),
                   polygons=[[(float(x), float(y)) for x, y in p] for p in d.get("polygons") or []],
                   box=None if box is None else (int(box[0]), int(box[1]), int(box[2]), int(box[3])))

    def summary(self) -> str:
        """What the audit log records: the box, the area and a digest of the mask."""
        digest = hashlib.sha256(self.mask_png or b"").hexdigest()[:12] if self.mask_png else "box-only"
        box = "none" if self.box is None else ",".join(str(v) for v in self.box)
        return f"outline box={box} area={self.area()} mask={digest}"
