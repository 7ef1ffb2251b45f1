"""Severity sweep: for each corruption, the clean top-1 class's probability at severity levels 0-5.

Levels follow the engine's table (Mishra et al. §2.3, ``engine.corrupt.registry``) so a sweep in the
viewer is the same experiment as the robustness benchmark, on one photo. Level 0 is the clean photo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engine.corrupt import LEVELS, corrupt
from engine.inference import Predictor

__all__ = ["SWEEP_CORRUPTIONS", "SweepPoint", "SweepResult", "run_sweep"]

SWEEP_CORRUPTIONS = ("salt_and_pepper", "gaussian_blur", "motion_blur", "jpeg", "brightness_contrast")


@dataclass(frozen=True)
class SweepPoint:
    corruption: str
    level: int
    probability: float  # of the clean top-1 class
    top_code: str


@dataclass
class SweepResult:
    target_code: str
    target_name: str
    curves: dict[str, list[SweepPoint]] = field(default_factory=dict)

    def series(self, corruption: str) -> tuple[list[int], list[float]]:
        pts = self.curves.get(corruption, [])
        return [p.level for p in pts], [p.probability for p in pts]

    @property
    def complete(self) -> bool:
        """Every corruption has its clean point and one per level."""
        return all(len(self.curves.get(name, [])) == len(LEVELS) + 1 for name in SWEEP_CORRUPTIONS)


def run_sweep(predictor: Predictor, rgb: np.ndarray, seed: int = 0,
              cancelled: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, int, SweepResult]]:
    """Yields ``(done, total, partial result)`` after each prediction; stops early when ``cancelled()``."""
    clean = predictor.predict(rgb)
    target = clean.top
    k = [s.code for s in clean.differential].index(target.code)
    result = SweepResult(target.code, target.name)
    total = len(SWEEP_CORRUPTIONS) * len(LEVELS)
    done = 0
    for name in SWEEP_CORRUPTIONS:
        result.curves[name] = [SweepPoint(name, 0, clean.differential[k].probability, target.code)]
    for name in SWEEP_CORRUPTIONS:
        for level in LEVELS:
            if cancelled():
                return
            p = predictor.predict(corrupt(rgb, name, level=level, seed=seed))
            prob = next(s.probability for s in p.differential if s.code == target.code)
            result.curves[name].append(SweepPoint(name, level, prob, p.top.code))
            done += 1
            yield done, total, result
