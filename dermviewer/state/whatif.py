"""What-if parameters: the corruptions a clinician dials in to see how fragile a prediction is.

Mishra et al. (robustness protocol, §2.3): salt-and-pepper up to 5 % of pixels at a black:white
ratio, Gaussian blur; plus motion blur, JPEG re-compression and exposure. Each parameter's neutral
value turns its corruption off, so the default parameters are the clean photo. The corruptions run in a
fixed physical order -- exposure, defocus, shake, shot noise, re-compression -- with a fixed seed, so a
slider position always means the same corrupted photo.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from engine.corrupt import brightness_contrast, gaussian_blur, jpeg, motion_blur, salt_and_pepper
from engine.prediction import Prediction

__all__ = ["PARAM_RANGES", "DiffRow", "WhatIfComparison", "WhatIfParams", "compare"]

# name -> (minimum, maximum, neutral)
PARAM_RANGES: dict[str, tuple[float, float, float]] = {
    "sp_amount": (0.0, 0.05, 0.0),
    "sp_black_ratio": (0.0, 1.0, 0.75),
    "blur_sigma": (0.0, 5.0, 0.0),
    "motion_length": (1.0, 41.0, 1.0),
    "motion_angle": (0.0, 180.0, 45.0),
    "jpeg_quality": (1.0, 100.0, 100.0),
    "brightness": (-100.0, 100.0, 0.0),
}


@dataclass(frozen=True)
class WhatIfParams:
    sp_amount: float = 0.0
    sp_black_ratio: float = 0.75
    blur_sigma: float = 0.0
    motion_length: float = 1.0
    motion_angle: float = 45.0
    jpeg_quality: int = 100
    brightness: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (lo, hi, _) in PARAM_RANGES.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v!r}")

    def with_(self, **changes: Any) -> WhatIfParams:
        return replace(self, **changes)

    def is_identity(self) -> bool:
        """True when no corruption is active, i.e. the what-if photo is the clean photo."""
        return not self.active()

    def active(self) -> list[str]:
        """Human-readable list of the corruptions that are on, in the order they run."""
        out = []
        if self.brightness != 0:
            out.append(f"brightness {self.brightness:+.0f}")
        if self.blur_sigma > 0:
            out.append(f"Gaussian blur σ={self.blur_sigma:.2f}")
        if self.motion_length > 1:
            out.append(f"motion blur {self.motion_length:.0f}px @ {self.motion_angle:.0f}°")
        if self.sp_amount > 0:
            out.append(f"salt-and-pepper {self.sp_amount * 100:.1f}% (black {self.sp_black_ratio:.0%})")
        if self.jpeg_quality < 100:
            out.append(f"JPEG q={self.jpeg_quality}")
        return out

    @staticmethod
    def blur_ksize(sigma: float) -> int:
        """Odd kernel covering ±3σ: a fixed 5x5 kernel stops blurring past σ≈1.5 (see engine.corrupt)."""
        return max(3, 2 * math.ceil(3 * sigma) + 1)

    def apply(self, img: np.ndarray) -> np.ndarray:
        out = img
        if self.brightness != 0:
            out = brightness_contrast(out, brightness=self.brightness)
        if self.blur_sigma > 0:
            out = gaussian_blur(out, ksize=self.blur_ksize(self.blur_sigma), sigma=self.blur_sigma)
        if self.motion_length > 1:
            out = motion_blur(out, length=self.motion_length, angle=self.motion_angle)
        if self.sp_amount > 0:
            out = salt_and_pepper(out, amount=self.sp_amount, black_ratio=self.sp_black_ratio, seed=self.seed)
        if self.jpeg_quality < 100:
            out = jpeg(out, quality=int(self.jpeg_quality))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiffRow:
    code: str
    name: str
    clean: float
    corrupted: float
    malignant: bool

    @property
    def delta(self) -> float:
        return self.corrupted - self.clean


@dataclass(frozen=True)
class WhatIfComparison:
    """Clean vs corrupted differential, in the clean ranking's order."""

    rows: list[DiffRow]
    clean_top: str
    corrupted_top: str
    clean_top_name: str
    corrupted_top_name: str

    @property
    def changed(self) -> bool:
        return self.clean_top != self.corrupted_top

    @property
    def max_abs_delta(self) -> float:
        return max((abs(r.delta) for r in self.rows), default=0.0)

    def summary(self) -> str:
        if self.changed:
            return f"Prediction changed: {self.clean_top_name} → {self.corrupted_top_name}"
        return f"Prediction unchanged ({self.clean_top_name}); largest shift {self.max_abs_delta * 100:.1f} pts"


def compare(clean: Prediction, corrupted: Prediction) -> WhatIfComparison:
    by_code = {s.code: s.probability for s in corrupted.differential}
    rows = [DiffRow(s.code, s.name, s.probability, by_code.get(s.code, 0.0), s.malignant) for s in clean.differential]
    return WhatIfComparison(rows, clean.top.code, corrupted.top.code, clean.top.name, corrupted.top.name)
