"""Single-label (softmax) classification report: the numbers a skin-disease paper tables.

Accuracy, balanced multi-class accuracy (BMA, the ISIC challenge metric), macro/weighted P/R/F1 (the
columns of DermImitFormer Table 2), top-k accuracy and the Skin-10 top-k weighted accuracy (see
:mod:`engine.metrics.topk`), one-vs-rest AUROC, ECE (:mod:`engine.metrics.calibration`) and, with a
malignancy flag per class, the SkinDistilViT §5.4 malignant-vs-benign view
(:mod:`engine.metrics.malignancy`). The body-part head is single-label too and uses this report.

Every per-class quantity is computed over ``labels=range(C)`` so a class missing from a fold keeps
its row (support 0, P/R/F1 0 by ``zero_division=0``, AUROC NaN) instead of shifting the others.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from engine.metrics._util import FloatArray, IntArray, check_class_names, check_probs_labels, to_jsonable
from engine.metrics.calibration import expected_calibration_error
from engine.metrics.malignancy import BinaryMetrics, malignancy_report
from engine.metrics.topk import top_k_accuracy, top_k_weighted_accuracy

__all__ = ["ClassMetrics", "ClassificationMetrics", "classification_report", "one_vs_rest_auroc"]


@dataclass(frozen=True)
class ClassMetrics:
    """One class's row of the report. ``auroc`` is NaN when the class is absent (or the only one)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    auroc: float


@dataclass(frozen=True)
class ClassificationMetrics:
    """Result of :func:`classification_report`. Ratios are in [0, 1]; top-k dicts are keyed by k.

    ``balanced_accuracy`` averages recall over the classes present in ``y_true`` (as scikit-learn and
    the ISIC BMA do), whereas ``macro_recall`` averages over all C classes, counting absent ones as 0.
    """

    class_names: list[str]
    n_samples: int
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    top_k_accuracy: dict[int, float]
    top_k_weighted_accuracy: dict[int, float]
    top_k_balanced_accuracy: dict[int, float]
    macro_auroc: float
    ece: float
    per_class: list[ClassMetrics]
    confusion: IntArray  # (C, C), rows = true class, columns = predicted class
    malignancy: BinaryMetrics | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: floats, ints, lists, str keys; NaN becomes ``None``."""
        result: dict[str, Any] = to_jsonable(self)
        return result


def one_vs_rest_auroc(y_true: npt.ArrayLike, probs: npt.ArrayLike) -> FloatArray:
    """Per-class one-vs-rest AUROC (C,); NaN for a class absent from ``y_true`` or the only one in it."""
    y, p = check_probs_labels(y_true, probs)
    out = np.full(p.shape[1], np.nan)
    for c in range(p.shape[1]):
        positives = y == c
        if 0 < positives.sum() < len(y):
            out[c] = roc_auc_score(positives, p[:, c])
    return out


def _nanmean(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def classification_report(
    y_true: npt.ArrayLike,
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    *,
    malignant: Sequence[bool] | None = None,
    k: Iterable[int] = (1, 2, 3),
    n_bins: int = 15,
    malignant_threshold: float = 0.5,
) -> ClassificationMetrics:
    """Evaluate softmax outputs ``probs`` (N, C) against integer labels ``y_true`` (N,).

    The prediction is ``argmax`` (ties -> lowest index). ``malignant`` (one flag per class) adds the
    malignant-vs-benign metrics computed on summed malignant probability.
    """
    y, p = check_probs_labels(y_true, probs)
    n_classes = p.shape[1]
    names = check_class_names(class_names, n_classes)
    labels = list(range(n_classes))
    pred = p.argmax(axis=1)

    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    macro = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(y, pred, labels=labels, average="weighted", zero_division=0)
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected when a fold lacks a class.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=UndefinedMetricWarning)
        bma = float(balanced_accuracy_score(y, pred))
    auroc = one_vs_rest_auroc(y, p)
    ks = sorted({int(v) for v in k})

    per_class = [
        ClassMetrics(
            name=names[c],
            precision=float(prec[c]),
            recall=float(rec[c]),
            f1=float(f1[c]),
            support=int(support[c]),
            auroc=float(auroc[c]),
        )
        for c in labels
    ]
    return ClassificationMetrics(
        class_names=names,
        n_samples=len(y),
        accuracy=float(accuracy_score(y, pred)),
        balanced_accuracy=bma,
        macro_precision=float(macro[0]),
        macro_recall=float(macro[1]),
        macro_f1=float(macro[2]),
        weighted_precision=float(weighted[0]),
        weighted_recall=float(weighted[1]),
        weighted_f1=float(weighted[2]),
        top_k_accuracy={kk: top_k_accuracy(y, p, kk) for kk in ks},
        top_k_weighted_accuracy={kk: top_k_weighted_accuracy(y, p, kk, "frequency") for kk in ks},
        top_k_balanced_accuracy={kk: top_k_weighted_accuracy(y, p, kk, "balanced") for kk in ks},
        macro_auroc=_nanmean(auroc),
        ece=expected_calibration_error(p, y, n_bins=n_bins),
        per_class=per_class,
        confusion=confusion_matrix(y, pred, labels=labels).astype(np.int64),
        malignancy=None
        if malignant is None
        else malignancy_report(y, p, malignant, threshold=malignant_threshold),
    )
