"""Input checks and JSON conversion shared by the metric modules (private)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def check_probs_labels(y_true: npt.ArrayLike, probs: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    """Validate a single-label problem: ``probs`` (N, C) finite, ``y_true`` N integers in [0, C).

    Raises ``ValueError`` (not a project error) because a bad array is a programming mistake, not a
    user-facing file problem.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"probs must be a non-empty (N, C>=2) array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinite values")
    y_raw = np.asarray(y_true)
    if y_raw.shape != (p.shape[0],):
        raise ValueError(f"y_true must have shape ({p.shape[0]},), got {y_raw.shape}")
    if not np.all(np.equal(np.mod(y_raw, 1), 0)):
        raise ValueError("y_true must hold integer class indices")
    y = y_raw.astype(np.int64)
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"y_true holds labels outside [0, {p.shape[1]}): min {y.min()}, max {y.max()}")
    return y, p


def check_class_names(class_names: Sequence[str], n_classes: int) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    return names


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays, tuples and dicts to plain JSON types; NaN/inf -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def prepare_path(path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out
