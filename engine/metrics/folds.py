"""Cross-validation summaries: mean ± std over folds, formatted like DermImitFormer Table 2 ("78.8±0.5").

The std is the *sample* standard deviation (``ddof=1``), the usual choice for k-fold CV where the folds
are a sample of possible splits; with a single fold it is NaN (no spread can be estimated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

__all__ = ["FoldStat", "flatten_metrics", "format_mean_std", "summarize_folds"]


class FoldStat(TypedDict):
    mean: float  # NaN if no fold had a finite value
    std: float  # sample std (ddof=1); NaN if fewer than two finite values
    n: int  # folds with a finite value


def _is_number(value: Any) -> bool:
    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool | np.bool_)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten a ``to_dict()`` result to ``{"a.b": number}``; ``None`` -> NaN, other lists skipped.

    A list of dicts carrying a ``"name"`` (the per-class rows) is flattened by name, e.g.
    ``"per_class.melanoma.recall"``, so per-class results can be summarized across folds too.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "name" in v for v in value):
            for row in value:
                fields = {k: v for k, v in row.items() if k != "name"}
                flat.update(flatten_metrics(fields, f"{name}.{row['name']}."))
        elif value is None:
            flat[name] = math.nan
        elif _is_number(value):
            flat[name] = float(value)
    return flat


def summarize_folds(folds: Sequence[Mapping[str, Any]]) -> dict[str, FoldStat]:
    """Mean and sample std (ddof=1) per numeric key over folds; NaN/None values are left out."""
    flats = [flatten_metrics(f) for f in folds]
    keys = sorted({k for f in flats for k in f})
    summary: dict[str, FoldStat] = {}
    for key in keys:
        values = np.array([f[key] for f in flats if key in f], dtype=np.float64)
        values = values[np.isfinite(values)]
        n = int(values.size)
        summary[key] = FoldStat(
            mean=float(values.mean()) if n else math.nan,
            std=float(values.std(ddof=1)) if n > 1 else math.nan,
            n=n,
        )
    return summary


def format_mean_std(mean: float | None, std: float | None, *, percent: bool = True, digits: int = 1) -> str:
    """``format_mean_std(0.745, 0.025) == "74.5 ± 2.5"``; a missing std prints the mean alone."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{digits}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * scale:.{digits}f}"
    return text
