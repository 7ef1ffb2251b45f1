"""The lesion finder (issue 15): outline and box every lesion on a photo, and crop the classifier onto one.

A :class:`LesionFinder` runs the lesion segmentation network (:mod:`engine.models.lesion_seg`, trained by
``dermviewer-train lesion-cv``) in ONNX Runtime, without torch: the photo is squashed to the network's square
input, the per-pixel lesion probability is brought back to the photo's frame, and every 8-connected region
above the threshold and at least ``min_area`` of the photo is a :class:`Lesion`, largest first. A photo with
no region above the threshold (plain skin) gives no lesion, and says so.

The ONNX file carries its own settings (input size, normalisation, threshold, minimum area, the run that
made it) as the metadata entry :data:`META_KEY`; a file without it is refused, as is any file ONNX Runtime
cannot open, each with a :class:`LesionFinderError` naming the file.

:func:`lesion_crop` cuts the square around a lesion's box with a margin, for the classifier to run on the
lesion instead of the whole frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from engine.errors import DermViewerError
from engine.metrics.segmentation import Box, mask_box

__all__ = [
    "DEFAULT_MARGIN",
    "META_KEY",
    "Lesion",
    "LesionFinder",
    "LesionFinderError",
    "LesionMap",
    "default_finder_path",
    "fill_holes",
    "find_components",
    "lesion_crop",
    "lesion_crop_rect",
]

META_KEY = "dermviewer.lesion_finder"
DEFAULT_MARGIN = 0.25  # of the box's longer side, on each side


class LesionFinderError(DermViewerError):
    """A lesion finder file is missing, unreadable or not a DermViewer lesion finder."""


@dataclass(frozen=True)
class Lesion:
    box: Box  # (x0, y0, x1, y1) in photo pixels, x1/y1 exclusive
    area_fraction: float  # of the photo
    score: float  # mean lesion probability inside the region
    mask: npt.NDArray[np.bool_] = field(repr=False, compare=False)  # the region, in the photo's frame

    def to_json(self) -> dict[str, Any]:
        return {"box": list(self.box), "area_fraction": round(self.area_fraction, 5), "score": round(self.score, 4)}


@dataclass(frozen=True)
class LesionMap:
    """The finder's answer for one photo: the probability in the photo's frame and the lesions found."""

    probability: npt.NDArray[np.float32] = field(repr=False)
    lesions: list[Lesion]
    threshold: float

    @property
    def found(self) -> bool:
        return bool(self.lesions)

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """Every found lesion's pixels (regions below ``min_area`` left out)."""
        out = np.zeros(self.probability.shape, bool)
        for les in self.lesions:
            out |= les.mask
        return out

    def summary(self) -> str:
        if not self.lesions:
            return "no lesion found above the threshold"
        n = len(self.lesions)
        largest = 100 * self.lesions[0].area_fraction
        return f"{n} lesion{'s' if n > 1 else ''} found (the largest covers {largest:.1f} % of the photo)"


def fill_holes(binary: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Background pixels not reachable from the frame's border become foreground: a lesion is one solid region
    (a pale centre, a glint or a hair across it is not a hole in it)."""
    h, w = binary.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = binary
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return np.asarray(binary | (flood[1:-1, 1:-1] == 0), np.uint8)


def find_components(probability: npt.ArrayLike, threshold: float = 0.5, min_area: float = 0.002,
                    fill: bool = True) -> list[Lesion]:
    """Every 8-connected region of ``probability > threshold`` covering at least ``min_area`` of the frame;
    with ``fill``, the holes inside a region are filled first (:func:`fill_holes`)."""
    prob = np.asarray(probability, np.float32)
    binary = (prob > threshold).astype(np.uint8)
    if fill:
        binary = fill_holes(binary)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    total = float(prob.size)
    out = []
    for k in range(1, n):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area / total < min_area:
            continue
        region = labels == k
        box = mask_box(region)
        assert box is not None
        out.append(Lesion(box, area / total, float(prob[region].mean()), region))  # holes count in the score
    out.sort(key=lambda les: les.area_fraction, reverse=True)
    return out


def lesion_crop_rect(shape: tuple[int, ...], box: Box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """``(left, top, side)`` of the square around ``box`` grown by ``margin`` of its longer side on each side,
    clipped to a frame of ``shape`` (a lesion at the edge gets a square shifted inwards where the frame allows)."""
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = box
    side = round(min(max(max(x1 - x0, y1 - y0) * (1 + 2 * margin), 8), h, w))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = round(min(max(cx - side / 2, 0), w - side))
    top = round(min(max(cy - side / 2, 0), h - side))
    return int(left), int(top), int(side)


def lesion_crop(image: npt.NDArray[np.uint8], box: Box, margin: float = DEFAULT_MARGIN) -> npt.NDArray[np.uint8]:
    """The photo cut to :func:`lesion_crop_rect`: what the classifier sees when it is zoomed onto a lesion."""
    left, top, side = lesion_crop_rect(image.shape, box, margin)
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def default_finder_path() -> Path:
    import resources

    return resources.resource_path("models", "lesion_finder.onnx")


class LesionFinder:
    """ONNX Runtime session of a lesion finder file; ``threads`` is ONNX Runtime's intra-op budget."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as st

        self.path = Path(path) if path is not None else default_finder_path()
        if not self.path.is_file():
            raise LesionFinderError("no such lesion finder file", self.path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except (st.Fail, st.InvalidArgument, st.InvalidGraph, st.InvalidProtobuf, st.NoSuchFile,
                RuntimeError) as exc:
            raise LesionFinderError(f"ONNX Runtime cannot load it: {exc}", self.path) from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise LesionFinderError(f"not a DermViewer lesion finder (no {META_KEY!r} metadata)", self.path)
        try:
            meta = json.loads(raw)
            self.size = int(meta["size"])
            self.mean = np.asarray(meta["mean"], np.float32).reshape(3, 1, 1)
            self.std = np.asarray(meta["std"], np.float32).reshape(3, 1, 1)
            self.threshold = float(meta.get("threshold", 0.5))
            self.min_area = float(meta.get("min_area", 0.002))
            self.tta = bool(meta.get("tta", False))
            self.fill_holes = bool(meta.get("fill_holes", False))
        except (ValueError, KeyError, TypeError) as exc:
            raise LesionFinderError(f"its {META_KEY!r} metadata is malformed: {exc}", self.path) from exc
        self.meta: dict[str, Any] = meta
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB photo (H, W, 3), got {image.shape}")
        x = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = (x.transpose(2, 0, 1) / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(x[None], np.float32)

    def probability(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Lesion probability at the network's input size (``size`` × ``size``); with the file's ``tta`` flag,
        the mean over the photo and its mirror image (one batch of two)."""
        x = self.preprocess(image)
        if not self.tta:
            out = self.session.run(None, {self.input_name: x})[0]
            return np.asarray(out, np.float32).reshape(self.size, self.size)
        out = self.session.run(None, {self.input_name: np.concatenate([x, x[..., ::-1]])})[0]
        out = np.asarray(out, np.float32).reshape(2, self.size, self.size)
        return np.asarray((out[0] + out[1, :, ::-1]) / 2, np.float32)

    def find(self, image: npt.NDArray[np.uint8]) -> LesionMap:
        h, w = image.shape[:2]
        prob = np.asarray(cv2.resize(self.probability(image), (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
        return LesionMap(prob, find_components(prob, self.threshold, self.min_area, fill=self.fill_holes),
                         self.threshold)
