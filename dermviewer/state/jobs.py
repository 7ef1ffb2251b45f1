"""The work the GUI hands to worker threads, as plain functions over engine objects (testable without Qt)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dermviewer.state.lesions import LesionHost, lesion_layer
from dermviewer.state.metadata import photo_metadata
from dermviewer.state.model import ModelHost
from dermviewer.state.overlays import LSM_HEADS, OverlayLayer, lsm_map, token_boxes
from dermviewer.state.whatif import WhatIfParams
from engine.context import ClinicalContext
from engine.errors import DermViewerError
from engine.imageio import DISPLAY_MAX_SIDE, load_image
from engine.lesions import LesionMap, lesion_crop_rect
from engine.prediction import Prediction

__all__ = ["CaseView", "FolderItem", "WhatIfView", "analyze_lesion", "analyze_photo", "layers_for", "predict_many",
           "predict_whatif", "predict_with_context", "thumbnail"]

THUMB = 96


def thumbnail(rgb: np.ndarray, side: int = THUMB) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def layers_for(prediction: Prediction, image_size: tuple[int, int]) -> dict[str, list[OverlayLayer]]:
    """LSM map + selected tokens for each LSM head, keyed by head."""
    out: dict[str, list[OverlayLayer]] = {}
    for head in LSM_HEADS:
        layers = [x for x in (lsm_map(prediction, head), token_boxes(prediction, head, image_size)) if x is not None]
        if layers:
            out[head] = layers
    return out


@dataclass
class CaseView:
    """Everything the canvas and panels need for the current photo."""

    path: Path
    image: np.ndarray
    prediction: Prediction
    layers: dict[str, list[OverlayLayer]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    lesions: LesionMap | None = None  # the lesion finder's answer for the whole photo (None: finder off)
    lesion_index: int | None = None  # a lesion view: the differential is of the crop around this lesion
    crop_rect: tuple[int, int, int] | None = None  # (left, top, side) of that crop in the whole photo
    whole: CaseView | None = None  # the whole-photo view a lesion view was cut from
    outline_cache: tuple[Any, OverlayLayer | None] | None = field(default=None, repr=False, compare=False)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def lesion_layer(self, colour: str) -> OverlayLayer | None:
        if self.lesions is None:
            return None
        key = (colour, self.image_size)
        if self.outline_cache is None or self.outline_cache[0] != key:
            self.outline_cache = (key, lesion_layer(self.lesions, self.image_size, colour, self.crop_rect,
                                                    self.lesion_index))
        return self.outline_cache[1]


def analyze_photo(host: ModelHost, path: Path, prediction: Prediction | None = None,
                  lesion_host: LesionHost | None = None) -> CaseView:
    """Load, predict (unless a prediction from a folder run is reused), find the lesions and build the overlay
    layers.

    A large JPEG is decoded at the size the screen and the model need (``DISPLAY_MAX_SIDE``, DCT scaling);
    folder runs decode the same way, so a reused prediction is the one this photo would get."""
    image = load_image(path, max_side=DISPLAY_MAX_SIDE)
    if prediction is None:
        prediction = host.predictor.predict(image)
    view = CaseView(Path(path), image, prediction, metadata=photo_metadata(path))
    view.layers = layers_for(prediction, view.image_size)
    if lesion_host is not None:
        view.lesions = lesion_host.find(image)
    return view


def analyze_lesion(host: ModelHost, whole: CaseView, index: int) -> CaseView:
    """The differential of the crop around lesion ``index`` of a whole-photo view (the classifier zoomed onto
    it): a view of its own, so the overlays, Grad-CAM, what-if and sweep all work on the crop."""
    if whole.lesions is None or not 0 <= index < len(whole.lesions.lesions):
        raise IndexError(f"no lesion {index + 1} on {whole.path.name}")
    rect = lesion_crop_rect(whole.image.shape, whole.lesions.lesions[index].box)
    left, top, side = rect
    crop = np.ascontiguousarray(whole.image[top:top + side, left:left + side])
    prediction = host.predictor.predict(crop)
    return CaseView(whole.path, crop, prediction, layers_for(prediction, (side, side)), whole.metadata,
                    whole.lesions, index, rect, whole)


@dataclass
class WhatIfView:
    params: WhatIfParams
    image: np.ndarray
    prediction: Prediction
    layers: dict[str, list[OverlayLayer]] = field(default_factory=dict)


def predict_whatif(host: ModelHost, clean: np.ndarray, params: WhatIfParams) -> WhatIfView:
    corrupted = params.apply(clean)
    pred = host.predictor.predict(corrupted)
    size = (int(corrupted.shape[0]), int(corrupted.shape[1]))
    return WhatIfView(params, corrupted, pred, layers_for(pred, size))


def predict_with_context(host: ModelHost, image: np.ndarray, context: ClinicalContext) -> Prediction:
    """The shown photo's prediction given the clinical context (the photo-only one is the view's)."""
    return host.predictor.predict(image, context)


@dataclass(frozen=True)
class FolderItem:
    done: int
    total: int
    path: Path
    prediction: Prediction | None
    thumbnail: np.ndarray | None
    error: str | None


def predict_many(host: ModelHost, paths: Sequence[Path], cancelled: Callable[[], bool]) -> Iterator[FolderItem]:
    """One item per photo, in order; a bad photo yields its error (naming the file) and the run carries on."""
    total = len(paths)
    for i, path in enumerate(paths, 1):
        if cancelled():
            return
        try:
            image = load_image(path, max_side=DISPLAY_MAX_SIDE)
            pred = host.predictor.predict(image)
        except DermViewerError as exc:
            yield FolderItem(i, total, Path(path), None, None, str(exc))
            continue
        yield FolderItem(i, total, Path(path), pred, thumbnail(image), None)
