"""Top-k accuracy and the top-k *weighted* accuracy of Skin-10/Skin-100.

Reference: "CNN and object detection for clinical skin images" (Skin-10/Skin-100 paper), §IV-A.2,
Eq. 2: ``A_top-k = sum_i Z_i^k w_i`` with ``Z_i^k = 1`` when ``y_i`` is among the k largest outputs and
``w_i = sum_j 1(y_j = y_i) / N``.

Taken literally Eq. 2 is not a proportion (all-correct gives ``sum_c n_c^2 / N``). What the paper
reports is a class-frequency-weighted mean of per-class top-k accuracies: Table IV's "Overall" column
equals ``sum_c (n_c / N) acc_c`` of its per-class columns on the Table II test counts (ResNet50:
74.75). That is what :func:`top_k_weighted_accuracy` computes by default; note it is algebraically
the plain top-k accuracy. Pass ``class_weights="balanced"`` for the imbalance-robust variant (the mean
of per-class top-k recalls, which at k=1 is the balanced multi-class accuracy).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from engine.metrics._util import BoolArray, check_probs_labels

__all__ = ["top_k_accuracy", "top_k_hits", "top_k_weighted_accuracy"]


def top_k_hits(y_true: npt.ArrayLike, probs: npt.ArrayLike, k: int) -> BoolArray:
    """Return ``Z^k`` (N,): whether the true class is among the k highest scores.

    Ties are broken towards the lower class index, so that k=1 agrees with ``probs.argmax(1)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y, p = check_probs_labels(y_true, probs)
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return np.asarray((top == y[:, None]).any(axis=1), dtype=np.bool_)


def top_k_accuracy(y_true: npt.ArrayLike, probs: npt.ArrayLike, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores."""
    return float(top_k_hits(y_true, probs, k).mean())


def top_k_weighted_accuracy(
    y_true: npt.ArrayLike,
    probs: npt.ArrayLike,
    k: int,
    class_weights: Literal["frequency", "balanced"] = "frequency",
) -> float:
    """Weighted mean over classes present in ``y_true`` of the per-class top-k accuracy (Eq. 2).

    ``"frequency"`` weights class c by ``n_c / N`` as the Skin-10 paper does (reproduces its Table IV);
    ``"balanced"`` weights every present class equally.
    """
    y, _ = check_probs_labels(y_true, probs)
    hits = top_k_hits(y_true, probs, k)
    classes, counts = np.unique(y, return_counts=True)
    per_class = np.array([hits[y == c].mean() for c in classes])
    if class_weights == "frequency":
        weights = counts / counts.sum()
    elif class_weights == "balanced":
        weights = np.full(len(classes), 1.0 / len(classes))
    else:
        raise ValueError(f"class_weights must be 'frequency' or 'balanced', got {class_weights!r}")
    return float(np.sum(weights * per_class))
