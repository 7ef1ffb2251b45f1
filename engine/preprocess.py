"""Preprocessing derived from the bundle config, shared by the torch and ONNX Runtime paths.

One numpy function so the two backends can never drift apart: squash-resize the whole photo to
the model's square input (PAD-UFES-20 photos are near-square crops), scale to [0, 1], normalise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["INTERPOLATIONS", "PreprocessConfig", "preprocess", "preprocess_batch"]

MIN_SIZE, MAX_SIZE = 16, 4096  # the model's square input side, in pixels
INTERPOLATIONS = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class PreprocessConfig:
    img_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "area"
    tta_hflip: bool = False  # predict on the photo and its mirror image and average the probabilities

    def __post_init__(self) -> None:
        """Every field checked: a bundle's header is user input, and an unchecked size or a zero std would
        surface later as a memory blow-up in the resize or NaN probabilities, far from the file's name."""
        if isinstance(self.img_size, bool) or not isinstance(self.img_size, int) \
                or not MIN_SIZE <= self.img_size <= MAX_SIZE:
            raise ValueError(f"img_size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {self.img_size!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}")
        if not isinstance(self.tta_hflip, bool):
            raise ValueError(f"tta_hflip must be true or false, got {self.tta_hflip!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if isinstance(values, str | bytes) or len(values) != 3:
                raise ValueError(f"{name} must be 3 numbers (R, G, B), got {values!r}")
            floats = tuple(float(v) for v in values)
            if not all(math.isfinite(v) for v in floats) or (name == "std" and min(floats) <= 0):
                raise ValueError(f"{name} must be finite{' and positive' if name == 'std' else ''}, got {values!r}")
            object.__setattr__(self, name, floats)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        return cls(**data)


def resize_square(rgb: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    flag = INTERPOLATIONS[interpolation]
    if interpolation == "area" and (rgb.shape[0] < size or rgb.shape[1] < size):
        flag = cv2.INTER_LINEAR  # INTER_AREA is for shrinking
    return cv2.resize(rgb, (size, size), interpolation=flag)


def preprocess(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """HxWx3 uint8 RGB -> (3, S, S) float32, normalised as the weights expect."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}")
    x: np.ndarray = resize_square(rgb, cfg.img_size, cfg.interpolation).astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def preprocess_batch(images: list[np.ndarray], cfg: PreprocessConfig) -> np.ndarray:
    return np.stack([preprocess(im, cfg) for im in images])
