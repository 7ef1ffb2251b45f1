"""The metrics view's numbers, every one from :mod:`engine.metrics` (issue 12, "Metrics view").

Disease (the fused differential d'): per-class P/R/F1, BMA, top-k, AUROC, ECE with its reliability
bins, malignant-vs-benign sensitivity/specificity (SkinDistilViT §5.4). Body part: the same report on
photos whose body part is known. Attributes: mAP-class/-image and macro-F1 with unknowns masked
(DermQuest Eq. 9-10). Only photos in ``dataset.scored`` that the model has a result for are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.result import EvalResult
from engine.metrics import (
    CalibrationBins,
    ClassificationMetrics,
    MultiLabelMetrics,
    calibration_bins,
    classification_report,
    multilabel_report,
)

__all__ = ["ResearchMetrics", "attribute_metrics", "compute_metrics", "scored_mask"]


@dataclass(frozen=True)
class ResearchMetrics:
    n_photos: int
    n_scored: int
    n_excluded: int  # eval_exclude (e.g. label_conflict) or excluded by the mapping
    n_unmapped: int
    n_missing: int  # no label, or the model has no result (unreadable photo, evaluation not finished)
    disease: ClassificationMetrics | None
    reliability: CalibrationBins | None
    body_part: ClassificationMetrics | None
    attributes: MultiLabelMetrics | None


def scored_mask(dataset: EvalDataset, result: EvalResult) -> np.ndarray:
    return dataset.scored & result.done & np.isfinite(result.disease).all(axis=1)


def _renorm(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return p / p.sum(axis=1, keepdims=True)


def attribute_metrics(dataset: EvalDataset, result: EvalResult, threshold: float = 0.5) -> MultiLabelMetrics | None:
    """mAP-class/-image and macro-F1 of the attribute head (the slow part: one AP per photo for mAP-image)."""
    tax = dataset.taxonomy
    if "attributes" not in result.probs or "attributes" not in tax.heads:
        return None
    ok = scored_mask(dataset, result) & np.isfinite(result.probs["attributes"]).all(axis=1)
    ok &= dataset.attributes_known.any(axis=1)
    if ok.sum() == 0:
        return None
    return multilabel_report(dataset.attributes[ok], result.probs["attributes"][ok], tax.head("attributes").codes,
                             mask=dataset.attributes_known[ok], threshold=threshold)


def compute_metrics(dataset: EvalDataset, result: EvalResult, *, k: tuple[int, ...] = (1, 2, 3),
                    n_bins: int = 10, attribute_threshold: float = 0.5, attributes: bool = True) -> ResearchMetrics:
    """Every metric; ``attributes=False`` leaves the attribute head for :func:`attribute_metrics` (seconds on
    a few hundred photos), so reopening an evaluation shows the rest at once."""
    ok = scored_mask(dataset, result)
    status = np.array(dataset.label_status)
    tax = dataset.taxonomy
    disease = reliability = body = None
    if ok.sum() > 0:
        y, p = dataset.disease[ok], _renorm(result.disease[ok])
        disease = classification_report(y, p, tax.head("disease").codes, malignant=tax.malignant_mask(), k=k,
                                        n_bins=n_bins)
        reliability = calibration_bins(p, y, n_bins=n_bins)
    if "body_part" in result.probs and "body_part" in tax.heads:
        okb = ok & (dataset.body_part >= 0) & np.isfinite(result.probs["body_part"]).all(axis=1)
        if okb.sum() > 0:
            body = classification_report(dataset.body_part[okb], _renorm(result.probs["body_part"][okb]),
                                         tax.head("body_part").codes, k=k, n_bins=n_bins)
    attrs = attribute_metrics(dataset, result, attribute_threshold) if attributes else None
    labelled = dataset.disease >= 0
    return ResearchMetrics(
        n_photos=len(dataset), n_scored=int(ok.sum()),
        n_excluded=int((labelled & dataset.eval_exclude).sum() + (status == "excluded").sum()),
        n_unmapped=int((status == "unmapped").sum()),
        n_missing=int((status == "missing").sum() + (dataset.scored & ~ok).sum()),
        disease=disease, reliability=reliability, body_part=body, attributes=attrs,
    )
