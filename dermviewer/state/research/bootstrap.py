"""Percentile bootstrap confidence intervals for accuracy and BMA (Efron & Tibshirani 1993, ch. 13).

The point estimates shown beside an interval come from :mod:`engine.metrics`; the resampling here
recomputes the same two definitions (accuracy = share correct; BMA = mean recall over the classes
present in the resample, as scikit-learn's ``balanced_accuracy_score``) vectorised over all
resamples at once, because a thousand calls into scikit-learn per subgroup would stall the panel.
Resamples are drawn with a fixed seed so a table is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_accuracy_bma", "paired_delta"]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __str__(self) -> str:
        return f"[{100 * self.low:.1f}, {100 * self.high:.1f}]"


def _bma_rows(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """BMA of each row of resampled labels/predictions (B, n)."""
    b = y.shape[0]
    offset = (np.arange(b)[:, None] * n_classes)
    support = np.bincount((offset + y).ravel(), minlength=b * n_classes).reshape(b, n_classes)
    hits = np.bincount((offset + y).ravel(), weights=(y == pred).ravel(), minlength=b * n_classes)
    hits = hits.reshape(b, n_classes)
    present = support > 0
    recall = np.where(present, hits / np.maximum(support, 1), 0.0)
    return np.asarray(recall.sum(axis=1) / present.sum(axis=1))


def _interval(values: np.ndarray, level: float) -> Interval:
    a = (1 - level) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return Interval(float(lo), float(hi))


def bootstrap_accuracy_bma(y: np.ndarray, pred: np.ndarray, n_classes: int, *, n_boot: int = 1000,
                           level: float = 0.95, seed: int = 0) -> tuple[Interval, Interval]:
    """Intervals of (accuracy, BMA) for one set of photos."""
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    ys, ps = y[idx], pred[idx]
    return _interval((ys == ps).mean(axis=1), level), _interval(_bma_rows(ys, ps, n_classes), level)


def paired_delta(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int, *, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[Interval, Interval]:
    """Intervals of B minus A in (accuracy, BMA), resampling the *same* photos for both models."""
    y, a, b = (np.asarray(v, np.int64) for v in (y, pred_a, pred_b))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    ys = y[idx]
    acc = (b[idx] == ys).mean(axis=1) - (a[idx] == ys).mean(axis=1)
    bma = _bma_rows(ys, b[idx], n_classes) - _bma_rows(ys, a[idx], n_classes)
    return _interval(acc, level), _interval(bma, level)
