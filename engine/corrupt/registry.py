"""Severity levels 1-5 and the registry of corruptions (Mishra et al., robustness protocol, §2.3).

Severity table (pixels / 8-bit intensity units of the array the corruption is applied to; the levels
are tuned for the 224-600 px photos the models see):

    corruption           parameter     1      2      3      4      5     fixed at every level
    salt_and_pepper      amount        0.01   0.02   0.03   0.04   0.05  black_ratio 0.75 (3:1)
    gaussian_blur        sigma         0.5    0.75   1.0    1.25   1.5   ksize 5
    motion_blur          length        3      5      7      11     15    angle 45
    gaussian_noise       sigma         5      10     15     20     30
    jpeg                 quality       80     60     40     20     10
    brightness_contrast  brightness    -10    -20    -30    -45    -60
                         contrast      0.9    0.8    0.7    0.6    0.5

Anchors: salt-and-pepper level 5 is the paper's maximum (5 % of the pixels, 3:1) and level k is k %;
blur level 3 (sigma 1.0) approximates the paper's plain 5x5 Gaussian, which is OpenCV's binomial
kernel (``gaussian_blur(img)`` with ``sigma=None`` reproduces it exactly). Blur stops at sigma
1.5: a 5x5 kernel with a larger sigma tends to a box filter whose side lobes pass *more* high
frequency (the Laplacian energy of noise rises again past ~1.6), so stronger defocus needs a larger
``ksize``. Motion blur uses a fixed diagonal so that a benchmark is comparable across photos and
degrades both axes; the GUI exposes the angle. Brightness/contrast simulates an under-exposed, flat
photo (a dim consulting room).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.corrupt import ops
from engine.corrupt.errors import CorruptionError
from engine.corrupt.ops import Image, check_seed

__all__ = [
    "CORRUPTIONS",
    "LEVELS",
    "Corruption",
    "check_level",
    "corrupt",
    "get_corruption",
    "list_corruptions",
]

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)


def check_level(level: object, name: str | None) -> int:
    """Levels are the integers 1-5; bools and integral floats are refused to catch slider/config slips."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise CorruptionError(name, f"level must be an integer in 1-5, got {level!r}")
    return level


@dataclass(frozen=True)
class Corruption:
    """One corruption: its function, its severity table and whether it consumes a seed."""

    name: str
    fn: Callable[..., Image]
    levels: tuple[Mapping[str, float], ...] = field(hash=False)
    stochastic: bool
    summary: str

    def __post_init__(self) -> None:
        if len(self.levels) != len(LEVELS):
            raise CorruptionError(self.name, f"needs {len(LEVELS)} severity levels, got {len(self.levels)}")
        unknown = {key for params in self.levels for key in params} - set(self.param_names)
        if unknown:
            raise CorruptionError(self.name, f"severity table names unknown parameters {sorted(unknown)}")
        # Read-only views: the table is shared by every caller, a stray write must not change it.
        object.__setattr__(self, "levels", tuple(MappingProxyType(dict(p)) for p in self.levels))

    @property
    def param_names(self) -> tuple[str, ...]:
        """The continuous parameters a caller (or a GUI slider) may set, in signature order."""
        return tuple(p for p in inspect.signature(self.fn).parameters if p not in ("img", "seed"))

    def params_for_level(self, level: int) -> dict[str, float]:
        """A fresh copy of the table row for ``level`` (1-5)."""
        return dict(self.levels[check_level(level, self.name) - 1])

    def resolve(self, level: int | None = None, **params: float) -> dict[str, float]:
        """The keyword arguments a call would use: the level's row, overridden by explicit ``params``.

        With neither, the function's own defaults apply. Unknown parameter names are refused here.
        """
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise CorruptionError(
                self.name, f"unknown parameter(s) {unknown}; expected some of {list(self.param_names)}"
            )
        base = {} if level is None else self.params_for_level(level)
        return {**base, **params}

    def __call__(self, img: Image, level: int | None = None, seed: int = 0, **params: float) -> Image:
        kwargs: dict[str, Any] = self.resolve(level, **params)
        seed = check_seed(seed, self.name)  # checked even when unused, so bad seeds fail everywhere
        if self.stochastic:
            kwargs["seed"] = seed
        return self.fn(img, **kwargs)


def _table(**columns: tuple[float, ...] | float) -> tuple[dict[str, float], ...]:
    """Rows per level from columns; a scalar column is the same at every level."""
    rows: list[dict[str, float]] = [{} for _ in LEVELS]
    for key, column in columns.items():
        values = column if isinstance(column, tuple) else (column,) * len(LEVELS)
        for row, value in zip(rows, values, strict=True):
            row[key] = value
    return tuple(rows)


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption(
            "salt_and_pepper",
            ops.salt_and_pepper,
            _table(amount=(0.01, 0.02, 0.03, 0.04, 0.05), black_ratio=0.75),
            stochastic=True,
            summary="shot noise: k % of pixels black or white, 3:1 (paper §2.3)",
        ),
        Corruption(
            "gaussian_blur",
            ops.gaussian_blur,
            _table(ksize=5, sigma=(0.5, 0.75, 1.0, 1.25, 1.5)),
            stochastic=False,
            summary="defocus: 5x5 Gaussian kernel (paper §2.3)",
        ),
        Corruption(
            "motion_blur",
            ops.motion_blur,
            _table(length=(3, 5, 7, 11, 15), angle=45.0),
            stochastic=False,
            summary="camera shake: line kernel of a given length and angle",
        ),
        Corruption(
            "gaussian_noise",
            ops.gaussian_noise,
            _table(sigma=(5.0, 10.0, 15.0, 20.0, 30.0)),
            stochastic=True,
            summary="sensor noise: additive Gaussian, sigma in 8-bit units",
        ),
        Corruption(
            "jpeg",
            ops.jpeg,
            _table(quality=(80, 60, 40, 20, 10)),
            stochastic=False,
            summary="re-compression: JPEG round trip at a given quality",
        ),
        Corruption(
            "brightness_contrast",
            ops.brightness_contrast,
            _table(brightness=(-10.0, -20.0, -30.0, -45.0, -60.0), contrast=(0.9, 0.8, 0.7, 0.6, 0.5)),
            stochastic=False,
            summary="exposure: darker and flatter with each level",
        ),
    )
}


def list_corruptions() -> list[str]:
    """Names in registry order: the paper's two first, then the extensions."""
    return list(CORRUPTIONS)


def get_corruption(name: str) -> Corruption:
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise CorruptionError(name, f"unknown corruption; known: {list_corruptions()}") from None


def corrupt(img: Image, name: str, level: int | None = None, seed: int = 0, **params: float) -> Image:
    """Apply one corruption by name, at a severity ``level`` and/or with explicit ``params``.

    Explicit params override the level's row (e.g. ``corrupt(img, "motion_blur", 3, angle=90)``);
    ``seed`` only matters for stochastic corruptions but is validated for all.
    """
    return get_corruption(name)(img, level, seed, **params)
