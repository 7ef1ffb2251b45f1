"""Confidence calibration: binned reliability statistics and the expected calibration error (ECE).

ECE follows Guo et al. 2017 ("On Calibration of Modern Neural Networks", Eq. 3): the confidence of a
prediction is its max probability, samples are put in ``n_bins`` equal-width bins over [0, 1] (bin b
holds confidences in ``(b/n, (b+1)/n]``, a confidence of exactly 0 goes to the first bin) and
``ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|``. 15 bins is the customary default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.metrics._util import FloatArray, IntArray, check_probs_labels

__all__ = ["CalibrationBins", "calibration_bins", "expected_calibration_error"]


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of a reliability diagram; empty bins have NaN accuracy and confidence."""

    edges: FloatArray  # (n_bins + 1,)
    counts: IntArray  # (n_bins,)
    accuracy: FloatArray  # (n_bins,) fraction correct in the bin
    confidence: FloatArray  # (n_bins,) mean max-probability in the bin

    @property
    def ece(self) -> float:
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def _as_multiclass(probs: npt.ArrayLike) -> FloatArray:
    """Accept (N, C) probabilities or (N,) positive-class probabilities of a binary problem."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    return p


def calibration_bins(probs: npt.ArrayLike, y_true: npt.ArrayLike, n_bins: int = 15) -> CalibrationBins:
    """Bin predictions by confidence (max probability) into ``n_bins`` equal-width bins."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = check_probs_labels(y_true, _as_multiclass(probs))
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Right-closed bins: ceil(conf * n) - 1, with conf == 0 clipped into bin 0.
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(index, weights=correct, minlength=n_bins) / counts
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
    return CalibrationBins(
        edges=np.linspace(0.0, 1.0, n_bins + 1),
        counts=counts,
        accuracy=np.where(counts > 0, acc, np.nan),
        confidence=np.where(counts > 0, conf, np.nan),
    )


def expected_calibration_error(probs: npt.ArrayLike, y_true: npt.ArrayLike, n_bins: int = 15) -> float:
    """ECE over ``n_bins`` equal-width confidence bins (0 = perfectly calibrated, in [0, 1])."""
    return calibration_bins(probs, y_true, n_bins).ece
