"""Comparing two models on the same photos: metric deltas with paired bootstrap intervals, and the
photos on which their top diagnosis differs (issue 12, "Compare two models")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermviewer.state.research.bootstrap import Interval, paired_delta
from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.metrics import ResearchMetrics, compute_metrics, scored_mask
from dermviewer.state.research.result import EvalResult

__all__ = ["Comparison", "compare_models"]


@dataclass(frozen=True)
class Comparison:
    name_a: str
    name_b: str
    n_photos: int  # photos both models have a result for and that are scored
    metrics_a: ResearchMetrics
    metrics_b: ResearchMetrics
    deltas: dict[str, float]  # B - A, ratios in [−1, 1]
    accuracy_ci: Interval
    bma_ci: Interval
    disagreements: list[int]  # photo indices where the top diagnoses differ (all photos with both results)

    def rows(self) -> list[tuple[str, float, float, float]]:
        out = []
        for name, delta in self.deltas.items():
            a, b = _value(self.metrics_a, name), _value(self.metrics_b, name)
            out.append((name, a, b, delta))
        return out


def _value(m: ResearchMetrics, name: str) -> float:
    d = m.disease
    if d is None:
        return float("nan")
    if name == "malignant sensitivity":
        return float(d.malignancy.sensitivity) if d.malignancy else float("nan")
    if name == "malignant specificity":
        return float(d.malignancy.specificity) if d.malignancy else float("nan")
    return float({"accuracy": d.accuracy, "BMA": d.balanced_accuracy, "macro F1": d.macro_f1,
                  "macro AUROC": d.macro_auroc, "ECE": d.ece}[name])


def compare_models(dataset: EvalDataset, a: EvalResult, b: EvalResult, *, n_boot: int = 1000,
                   seed: int = 0) -> Comparison:
    both = a.done & b.done
    pa, pb = a.predicted(), b.predicted()
    disagree = np.flatnonzero(both & (pa != pb) & (pa >= 0) & (pb >= 0))
    scored = scored_mask(dataset, a) & scored_mask(dataset, b)
    common = _restrict(a, scored), _restrict(b, scored)
    ma, mb = compute_metrics(dataset, common[0]), compute_metrics(dataset, common[1])
    names = ("accuracy", "BMA", "macro F1", "macro AUROC", "ECE", "malignant sensitivity", "malignant specificity")
    deltas = {n: _value(mb, n) - _value(ma, n) for n in names}
    n_classes = a.disease.shape[1]
    y = dataset.disease[scored]
    acc_ci, bma_ci = paired_delta(y, pa[scored], pb[scored], n_classes, n_boot=n_boot, seed=seed)
    return Comparison(a.model_name, b.model_name, int(scored.sum()), ma, mb, deltas, acc_ci, bma_ci,
                      [int(i) for i in disagree])


def _restrict(r: EvalResult, keep: np.ndarray) -> EvalResult:
    return EvalResult(r.model_key, r.model_name, r.probs, r.embeddings, r.done & keep, r.errors, r.folds)
