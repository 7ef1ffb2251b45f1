"""Everything the error inspector shows for one photo, computed in one job (no Qt).

True vs predicted for every head; Grad-CAM for the true class and for the predicted class (the
maps are in the model's squashed input frame and are resized to the photo for drawing); the LSM's
selected tokens; the lesion mask (``engine.masks``) and the photo's localisation figures from
``engine.metrics.localisation.photo_localisation`` (CAM of the predicted class, as its pointing game
defines); and the k nearest neighbours by embedding. The "predicted class" is the evaluation's (for an
out-of-fold file, the fold model that never saw the photo); the LSM tokens and the maps are the loaded
model's, which may say otherwise (``model_class``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.neighbours import Neighbour, NeighbourIndex
from dermviewer.state.research.result import EvalResult
from engine.inference import Predictor
from engine.masks import MaskError, load_mask
from engine.metrics.localisation import PhotoLocalisation, photo_localisation
from engine.prediction import Prediction
from engine.preprocess import preprocess

__all__ = ["HeadComparison", "PhotoInspection", "inspect_photo", "photo_cams"]


@dataclass(frozen=True)
class HeadComparison:
    head: str
    true: list[str]  # class codes the label says (several for attributes; [] when unknown)
    predicted: list[str]  # top class, or the attributes above threshold
    agree: bool | None  # None when the label is unknown


@dataclass
class PhotoInspection:
    index: int
    image: np.ndarray
    prediction: Prediction
    heads: list[HeadComparison]
    cam_true: np.ndarray | None  # (H, W) at the photo's size, in [0, 1]; None when the label is unknown
    cam_pred: np.ndarray | None
    true_class: int
    pred_class: int  # the evaluation's top class (an OOF file's fold model), explained by cam_pred
    model_class: int  # the loaded model's top class on this photo (the LSM tokens and CAMs are its)
    pred_probability: float  # of pred_class, in the evaluation shown
    disease_probs: np.ndarray  # (C,) the evaluation's differential (the loaded model's when not evaluated)
    mask: np.ndarray | None  # bool (H, W)
    localisation: PhotoLocalisation | None
    neighbours: list[Neighbour] = field(default_factory=list)


def photo_cams(model: Any, image: np.ndarray, predictor: Predictor, classes: list[int]) -> np.ndarray:
    """Grad-CAM maps of the disease head (fused output) for ``classes``, in the input frame (len, S, S)."""
    from engine.explain import grad_cam

    x = preprocess(image, predictor.bundle.preprocess)
    batch = np.repeat(x[None], len(classes), axis=0)
    return np.asarray(grad_cam(model, batch, "disease", classes))


def _to_photo(cam: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(cv2.resize(cam, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR))


def _row(result: EvalResult, head: str, index: int, live: list[float]) -> np.ndarray:
    """The evaluation's probabilities for this photo and head, else the loaded model's."""
    p = result.probs.get(head)
    if p is not None and result.done[index] and np.isfinite(p[index]).all():
        return np.asarray(p[index])
    return np.asarray(live)


def _heads(dataset: EvalDataset, result: EvalResult, index: int, pred: Prediction,
           threshold: float) -> list[HeadComparison]:
    tax = dataset.taxonomy
    out = []
    codes = tax.head("disease").codes
    t = int(dataset.disease[index])
    live = [] if pred.disease_probs is None else list(pred.disease_probs)
    d = codes[int(_row(result, "disease", index, live).argmax())]
    out.append(HeadComparison("disease", [codes[t]] if t >= 0 else [], [d], None if t < 0 else codes[t] == d))
    if pred.body_parts and "body_part" in tax.heads:
        bcodes = tax.head("body_part").codes
        b = int(dataset.body_part[index])
        top = bcodes[int(_row(result, "body_part", index, [s.probability for s in pred.body_parts]).argmax())]
        out.append(HeadComparison("body_part", [bcodes[b]] if b >= 0 else [], [top],
                                  None if b < 0 else bcodes[b] == top))
    if pred.attributes and "attributes" in tax.heads:
        acodes = tax.head("attributes").codes
        known = dataset.attributes_known[index]
        probs = _row(result, "attributes", index, [s.probability for s in pred.attributes])
        true = [c for j, c in enumerate(acodes) if known[j] and dataset.attributes[index, j] >= 0.5]
        said = [c for j, c in enumerate(acodes) if known[j] and probs[j] >= threshold]
        out.append(HeadComparison("attributes", true, said, None if not known.any() else set(true) == set(said)))
    return out


def inspect_photo(predictor: Predictor, explain_model: Any, dataset: EvalDataset, result: EvalResult,
                  index: int, neighbours: NeighbourIndex | None = None, k: int = 5) -> PhotoInspection:
    image = dataset.images.load(index)
    pred = predictor.predict(image)
    codes = dataset.taxonomy.head("disease").codes
    m_idx = codes.index(pred.top.code)
    shown = int(result.predicted()[index]) if result.done[index] else -1
    p_idx = shown if shown >= 0 else m_idx
    t_idx = int(dataset.disease[index])
    classes = [p_idx] if t_idx < 0 or t_idx == p_idx else [p_idx, t_idx]
    cams = photo_cams(explain_model, image, predictor, classes) if explain_model is not None else None
    mask = None
    mpath = dataset.mask_paths[index] if dataset.mask_paths else None
    if mpath is not None:
        try:
            mask = load_mask(mpath, (image.shape[0], image.shape[1]))
        except MaskError:
            mask = None
    loc = None
    if cams is not None:
        loc = photo_localisation(dataset.ids[index], mask, cam=cams[0], selected=pred.selected.get("disease"),
                                 grid=pred.grid_size, class_index=p_idx)
    cam_pred = _to_photo(cams[0], image.shape) if cams is not None else None
    cam_true = None
    if cams is not None and t_idx >= 0:
        cam_true = cam_pred if t_idx == p_idx else _to_photo(cams[1], image.shape)
    near: list[Neighbour] = []
    if neighbours is not None and result.embeddings is not None and np.isfinite(result.embeddings[index]).all():
        near = neighbours.query(result.embeddings[index], t_idx, k, exclude=index,
                                exclude_hash=dataset.images.hash(index))
    heads = _heads(dataset, result, index, pred, predictor.bundle.threshold("attributes"))
    live = np.zeros(len(codes), np.float32) if pred.disease_probs is None else np.asarray(pred.disease_probs)
    probs = np.asarray(result.disease[index]) if shown >= 0 else live
    return PhotoInspection(index, image, pred, heads, cam_true, cam_pred, t_idx, p_idx, m_idx, float(probs[p_idx]),
                           probs, mask, loc, near)
