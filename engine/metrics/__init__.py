"""Evaluation metrics shared by training (CV reports) and the viewer (model cards).

- :func:`classification_report`: single-label heads (disease, body part) - accuracy, BMA, P/R/F1,
  top-k and Skin-10 top-k weighted accuracy, AUROC, ECE, SkinDistilViT §5.4 malignant-vs-benign.
- :func:`multilabel_report`: multi-label heads - mAP-class / mAP-image (multi-task DermQuest paper,
  Eq. 9-10) with masked unknown labels, macro-F1.
- :mod:`~engine.metrics.localisation`: does an explanation point at the lesion (LSM hit rate, Grad-CAM
  pointing game beside the centre prior, CAM energy in the lesion), against lesion masks.
- :mod:`~engine.metrics.calibration`, :mod:`~engine.metrics.plots`, :mod:`~engine.metrics.folds`.
"""

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
