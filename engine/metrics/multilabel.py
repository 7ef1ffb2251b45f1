"""Multi-label heads (e.g. lesion attributes): mAP-class, mAP-image and macro-F1 at a threshold.

Reference: "Skin lesion classification with a deep multi-task model and body location" (DermQuest),
Eq. 9-10. mAP-class ranks all images for one class and averages the per-class AP; mAP-image ranks
all classes for one image and averages the per-image AP. AP is ``sum_j p(j) * delta r(j)``, exactly
scikit-learn's ``average_precision_score`` (non-interpolated, VOC-2010 style).

Partial annotation: ``mask[i, c]`` is True where label c of image i is *known*, the same convention
as a loss mask. Unknown entries are dropped from both rankings rather than treated as negatives, and
a class (image) with no known positive is skipped, because its AP is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, f1_score

from engine.metrics._util import BoolArray, FloatArray, IntArray, check_class_names, to_jsonable

__all__ = ["LabelMetrics", "MultiLabelMetrics", "map_class", "map_image", "multilabel_report"]


@dataclass(frozen=True)
class LabelMetrics:
    """One label. ``ap`` is NaN when no known positive exists; ``f1`` is NaN when nothing is known."""

    name: str
    ap: float
    f1: float
    positives: int  # known positives
    known: int  # known entries (positives + negatives)


@dataclass(frozen=True)
class MultiLabelMetrics:
    """Result of :func:`multilabel_report`; means skip NaN entries (see counts)."""

    class_names: list[str]
    threshold: float
    map_class: float
    map_image: float
    macro_f1: float
    n_classes_scored: int  # classes entering mAP-class
    n_images_scored: int  # images entering mAP-image
    per_class: list[LabelMetrics]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; NaN becomes ``None``."""
        result: dict[str, Any] = to_jsonable(self)
        return result


def _check(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[IntArray, FloatArray, BoolArray]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(f"probs must be a non-empty (N, C) array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinite values")
    y = np.asarray(y_true)
    if y.shape != p.shape:
        raise ValueError(f"y_true shape {y.shape} differs from probs shape {p.shape}")
    known = np.ones(p.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if known.shape != p.shape:
        raise ValueError(f"mask shape {known.shape} differs from probs shape {p.shape}")
    if not np.all(np.isin(y[known], (0, 1))):
        raise ValueError("known entries of y_true must be 0 or 1")
    return np.where(known, y, 0).astype(np.int64), p, known


def _ap_per_row(y: IntArray, p: FloatArray, known: BoolArray) -> FloatArray:
    """AP of each row's ranking over its known entries; NaN for rows without a known positive."""
    out = np.full(y.shape[0], np.nan)
    for i in range(y.shape[0]):
        yt = y[i, known[i]]
        if yt.sum() > 0:
            out[i] = average_precision_score(yt, p[i, known[i]])
    return out


def _mean(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def map_class(y_true: npt.ArrayLike, probs: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> float:
    """mAP-class (Eq. 9): mean over classes with a known positive of AP over that class's known images."""
    y, p, known = _check(y_true, probs, mask)
    return _mean(_ap_per_row(y.T, p.T, known.T))


def map_image(y_true: npt.ArrayLike, probs: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> float:
    """mAP-image (Eq. 10): mean over images with a known positive of AP over that image's known labels."""
    y, p, known = _check(y_true, probs, mask)
    return _mean(_ap_per_row(y, p, known))


def multilabel_report(
    y_true: npt.ArrayLike,
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    mask: npt.ArrayLike | None = None,
    threshold: float = 0.5,
) -> MultiLabelMetrics:
    """Evaluate sigmoid outputs ``probs`` (N, C) against {0,1} targets, ignoring ``~mask`` entries.

    Macro-F1 averages the per-class F1 of ``probs >= threshold`` over classes with at least one known
    entry (``zero_division=0``, so a class never positive and never predicted counts as 0, as in
    scikit-learn's multi-label macro-F1).
    """
    y, p, known = _check(y_true, probs, mask)
    names = check_class_names(class_names, p.shape[1])
    class_ap = _ap_per_row(y.T, p.T, known.T)
    image_ap = _ap_per_row(y, p, known)
    pred = (p >= threshold).astype(np.int64)
    per_class: list[LabelMetrics] = []
    for c, name in enumerate(names):
        sel = known[:, c]
        f1 = float(f1_score(y[sel, c], pred[sel, c], zero_division=0)) if sel.any() else float("nan")
        per_class.append(
            LabelMetrics(
                name=name, ap=float(class_ap[c]), f1=f1, positives=int(y[sel, c].sum()), known=int(sel.sum())
            )
        )
    f1s = np.array([m.f1 for m in per_class])
    return MultiLabelMetrics(
        class_names=names,
        threshold=float(threshold),
        map_class=_mean(class_ap),
        map_image=_mean(image_ap),
        macro_f1=_mean(f1s),
        n_classes_scored=int(np.isfinite(class_ap).sum()),
        n_images_scored=int(np.isfinite(image_ap).sum()),
        per_class=per_class,
    )
