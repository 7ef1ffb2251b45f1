"""Malignant-vs-benign grouping of a multi-class disease head.

SkinDistilViT §5.4 ("Cancer Detection Performance") scores how well a classifier separates cancer
classes (melanoma, BCC, SCC on ISIC 2019) from benign ones by collapsing the classes into two groups.
Here the malignant probability is the *sum* of the malignant classes' probabilities, thresholded at
``threshold``; this keeps an AUROC available and lets several small malignant classes add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from engine.metrics._util import IntArray, check_probs_labels, to_jsonable

__all__ = ["BinaryMetrics", "malignancy_report"]


@dataclass(frozen=True)
class BinaryMetrics:
    """Malignant (positive) vs benign. Undefined ratios are NaN (``None`` in :meth:`to_dict`)."""

    sensitivity: float
    specificity: float
    precision: float
    f1: float
    accuracy: float
    auroc: float
    threshold: float
    n_malignant: int
    n_benign: int
    confusion: IntArray  # [[TN, FP], [FN, TP]]

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = to_jsonable(self)
        return result


def malignancy_report(
    y_true: npt.ArrayLike,
    probs: npt.ArrayLike,
    malignant: Sequence[bool],
    threshold: float = 0.5,
) -> BinaryMetrics:
    """Binary metrics after summing the probabilities of the classes flagged in ``malignant``."""
    y, p = check_probs_labels(y_true, probs)
    flags = np.asarray(malignant, dtype=bool)
    if flags.shape != (p.shape[1],):
        raise ValueError(f"malignant has {flags.size} flags for {p.shape[1]} classes")
    y_bin = flags[y].astype(np.int64)
    score = p[:, flags].sum(axis=1)
    pred = (score >= threshold).astype(np.int64)
    both_present = 0 < y_bin.sum() < len(y_bin)
    return BinaryMetrics(
        sensitivity=float(recall_score(y_bin, pred, pos_label=1, zero_division=np.nan)),
        specificity=float(recall_score(y_bin, pred, pos_label=0, zero_division=np.nan)),
        precision=float(precision_score(y_bin, pred, pos_label=1, zero_division=np.nan)),
        f1=float(f1_score(y_bin, pred, pos_label=1, zero_division=np.nan)),
        accuracy=float(accuracy_score(y_bin, pred)),
        auroc=float(roc_auc_score(y_bin, score)) if both_present else float("nan"),
        threshold=float(threshold),
        n_malignant=int(y_bin.sum()),
        n_benign=int(len(y_bin) - y_bin.sum()),
        confusion=confusion_matrix(y_bin, pred, labels=[0, 1]).astype(np.int64),
    )
