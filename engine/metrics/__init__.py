"""Evaluation metrics shared by training (CV reports) and the viewer (model cards).

- :func:`classification_report`: single-label heads (disease, body part) - accuracy, BMA, P/R/F1,
  top-k and Skin-10 top-k weighted accuracy, AUROC, ECE, SkinDistilViT §5.4 malignant-vs-benign.
- :func:`multilabel_report`: multi-label heads - mAP-class / mAP-image (multi-task DermQuest paper,
  Eq. 9-10) with masked unknown labels, macro-F1.
- :mod:`~engine.metrics.localisation`: does an explanation point at the lesion (LSM hit rate, Grad-CAM
  pointing game beside the centre prior, CAM energy in the lesion), against lesion masks.
- :mod:`~engine.metrics.calibration`, :mod:`~engine.metrics.plots`, :mod:`~engine.metrics.folds`.

Names are imported from their submodule on first use (PEP 562), so that importing one light submodule, such
as :mod:`~engine.metrics.segmentation` for the app's lesion finder, does not import scikit-learn
(:mod:`~engine.metrics.classification`) on the prediction path (issue 14: about 1.3 s of start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.metrics._util import to_jsonable
    from engine.metrics.calibration import CalibrationBins, calibration_bins, expected_calibration_error
    from engine.metrics.classification import (
        ClassificationMetrics,
        ClassMetrics,
        classification_report,
        one_vs_rest_auroc,
    )
    from engine.metrics.folds import FoldStat, flatten_metrics, format_mean_std, summarize_folds
    from engine.metrics.localisation import (
        DILATION_FRACTION,
        CamEnergy,
        LocalisationSummary,
        LsmHit,
        PhotoLocalisation,
        Pointing,
        cam_energy_ratio,
        cell_lesion_overlap,
        dilate_mask,
        lesion_coverage,
        lesion_in_frame,
        lsm_hit_rate,
        photo_localisation,
        pointing_game,
        summarize_localisation,
    )
    from engine.metrics.malignancy import BinaryMetrics, malignancy_report
    from engine.metrics.multilabel import LabelMetrics, MultiLabelMetrics, map_class, map_image, multilabel_report
    from engine.metrics.plots import (
        confusion_matrix_csv,
        confusion_matrix_png,
        reliability_diagram,
        roc_curves_png,
    )
    from engine.metrics.topk import top_k_accuracy, top_k_hits, top_k_weighted_accuracy

_LAZY = {
    "BinaryMetrics": "engine.metrics.malignancy",
    "CalibrationBins": "engine.metrics.calibration",
    "CamEnergy": "engine.metrics.localisation",
    "ClassMetrics": "engine.metrics.classification",
    "ClassificationMetrics": "engine.metrics.classification",
    "DILATION_FRACTION": "engine.metrics.localisation",
    "FoldStat": "engine.metrics.folds",
    "LabelMetrics": "engine.metrics.multilabel",
    "LocalisationSummary": "engine.metrics.localisation",
    "LsmHit": "engine.metrics.localisation",
    "MultiLabelMetrics": "engine.metrics.multilabel",
    "PhotoLocalisation": "engine.metrics.localisation",
    "Pointing": "engine.metrics.localisation",
    "calibration_bins": "engine.metrics.calibration",
    "cam_energy_ratio": "engine.metrics.localisation",
    "cell_lesion_overlap": "engine.metrics.localisation",
    "classification_report": "engine.metrics.classification",
    "confusion_matrix_csv": "engine.metrics.plots",
    "confusion_matrix_png": "engine.metrics.plots",
    "dilate_mask": "engine.metrics.localisation",
    "expected_calibration_error": "engine.metrics.calibration",
    "flatten_metrics": "engine.metrics.folds",
    "format_mean_std": "engine.metrics.folds",
    "lesion_coverage": "engine.metrics.localisation",
    "lesion_in_frame": "engine.metrics.localisation",
    "lsm_hit_rate": "engine.metrics.localisation",
    "malignancy_report": "engine.metrics.malignancy",
    "map_class": "engine.metrics.multilabel",
    "map_image": "engine.metrics.multilabel",
    "multilabel_report": "engine.metrics.multilabel",
    "one_vs_rest_auroc": "engine.metrics.classification",
    "photo_localisation": "engine.metrics.localisation",
    "pointing_game": "engine.metrics.localisation",
    "reliability_diagram": "engine.metrics.plots",
    "roc_curves_png": "engine.metrics.plots",
    "summarize_folds": "engine.metrics.folds",
    "summarize_localisation": "engine.metrics.localisation",
    "to_jsonable": "engine.metrics._util",
    "top_k_accuracy": "engine.metrics.topk",
    "top_k_hits": "engine.metrics.topk",
    "top_k_weighted_accuracy": "engine.metrics.topk",
}

__all__ = [
    "DILATION_FRACTION",
    "BinaryMetrics",
    "CalibrationBins",
    "CamEnergy",
    "ClassMetrics",
    "ClassificationMetrics",
    "FoldStat",
    "LabelMetrics",
    "LocalisationSummary",
    "LsmHit",
    "MultiLabelMetrics",
    "PhotoLocalisation",
    "Pointing",
    "calibration_bins",
    "cam_energy_ratio",
    "cell_lesion_overlap",
    "classification_report",
    "confusion_matrix_csv",
    "confusion_matrix_png",
    "dilate_mask",
    "expected_calibration_error",
    "flatten_metrics",
    "format_mean_std",
    "lesion_coverage",
    "lesion_in_frame",
    "lsm_hit_rate",
    "malignancy_report",
    "map_class",
    "map_image",
    "multilabel_report",
    "one_vs_rest_auroc",
    "photo_localisation",
    "pointing_game",
    "reliability_diagram",
    "roc_curves_png",
    "summarize_folds",
    "summarize_localisation",
    "to_jsonable",
    "top_k_accuracy",
    "top_k_hits",
    "top_k_weighted_accuracy",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
