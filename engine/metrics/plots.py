"""Report artifacts a person reads: confusion matrix (CSV, PNG), ROC curves and reliability diagram.

matplotlib is imported inside each function and drawn on a bare ``Figure`` with the Agg canvas, so
importing this module is cheap, never touches the global pyplot backend and works without a display
(and inside the Qt app without fighting its backend).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

from engine.metrics._util import check_class_names, check_probs_labels, prepare_path
from engine.metrics.calibration import calibration_bins

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["confusion_matrix_csv", "confusion_matrix_png", "reliability_diagram", "roc_curves_png"]

_ANNOTATE_MAX_CLASSES = 20  # beyond this, numbers in cells are unreadable
_LEGEND_MAX_CLASSES = 15


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    out = prepare_path(path)
    fig.savefig(out, format="png", bbox_inches="tight")
    return out


def _check_square(cm: npt.ArrayLike, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    matrix = np.asarray(cm)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    return matrix, check_class_names(class_names, matrix.shape[0])


def confusion_matrix_csv(cm: npt.ArrayLike, class_names: Sequence[str], path: str | Path) -> Path:
    """Write rows = true class, columns = predicted class; header ``true\\predicted, <class names>``."""
    matrix, names = _check_square(cm, class_names)
    out = prepare_path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true\\predicted", *names])
        for name, row in zip(names, matrix.tolist(), strict=True):
            writer.writerow([name, *row])
    return out


def confusion_matrix_png(
    cm: npt.ArrayLike, class_names: Sequence[str], path: str | Path, normalize: bool = True
) -> Path:
    """Heat map of the confusion matrix; ``normalize`` divides each row by its support (recall view)."""
    matrix, names = _check_square(cm, class_names)
    values = matrix.astype(np.float64)
    if normalize:
        support = values.sum(axis=1, keepdims=True)
        values = np.divide(values, support, out=np.zeros_like(values), where=support > 0)
    n = len(names)
    side = float(np.clip(0.35 * n + 2.5, 4.0, 24.0))
    fig = _new_figure(side, side)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n)
    fontsize = 8 if n <= _ANNOTATE_MAX_CLASSES else 5
    ax.set_xticks(ticks, labels=names, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels=names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalized)" if normalize else ""))
    if n <= _ANNOTATE_MAX_CLASSES:
        top = values.max() if values.size else 0.0
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                colour = "white" if top > 0 and values[i, j] > 0.5 * top else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
    return _save(fig, path)


def roc_curves_png(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, class_names: Sequence[str], path: str | Path
) -> Path:
    """One-vs-rest ROC curve per class present (and not alone) in ``y_true``, with its AUROC."""
    y, p = check_probs_labels(y_true, probs)
    names = check_class_names(class_names, p.shape[1])
    fig = _new_figure(6.0, 6.0)
    ax = fig.add_subplot()
    aucs: list[float] = []
    for c, name in enumerate(names):
        positives = y == c
        if not 0 < positives.sum() < len(y):
            continue
        fpr, tpr, _ = roc_curve(positives, p[:, c])
        auc = float(roc_auc_score(positives, p[:, c]))
        aucs.append(auc)
        ax.plot(fpr, tpr, linewidth=1.0, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    macro = f"{np.mean(aucs):.3f}" if aucs else "n/a"
    ax.set_title(f"one-vs-rest ROC (macro AUROC {macro})")
    if aucs and len(aucs) <= _LEGEND_MAX_CLASSES:
        ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def reliability_diagram(
    probs: npt.ArrayLike, y_true: npt.ArrayLike, path: str | Path, n_bins: int = 15
) -> Path:
    """Accuracy vs mean confidence per confidence bin, with the ECE in the title (Guo et al. 2017)."""
    bins = calibration_bins(probs, y_true, n_bins)
    width = 1.0 / n_bins
    centers = bins.edges[:-1] + width / 2
    filled = bins.counts > 0
    fig = _new_figure(5.0, 6.0)
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centers[filled], bins.accuracy[filled], width=width, edgecolor="black", label="accuracy")
    ax.bar(
        centers[filled],
        bins.confidence[filled] - bins.accuracy[filled],
        bottom=bins.accuracy[filled],
        width=width,
        color="tab:red",
        alpha=0.3,
        label="gap",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram (ECE {100 * bins.ece:.2f}%)")
    ax.legend(loc="upper left", fontsize=8)
    hist.bar(centers, bins.counts, width=width, edgecolor="black", color="tab:grey")
    hist.set_xlim(0.0, 1.0)
    hist.set_xlabel("confidence (max probability)")
    hist.set_ylabel("count")
    return _save(fig, path)
