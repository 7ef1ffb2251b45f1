"""Dataset-level localisation beside the accuracy metrics: pointing game vs the centre prior, LSM hit
rate vs chance, CAM energy ratio -- per photo from ``engine.metrics.localisation.photo_localisation``
and aggregated by its ``summarize_localisation``. A generator job (one Grad-CAM per photo)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.inspection import photo_cams
from engine.errors import DermViewerError
from engine.inference import Predictor
from engine.masks import MaskError, load_mask
from engine.metrics.localisation import (
    LocalisationSummary,
    PhotoLocalisation,
    photo_localisation,
    summarize_localisation,
)

__all__ = ["LocalisationProgress", "localise_dataset"]


@dataclass(frozen=True)
class LocalisationProgress:
    done: int
    total: int
    elapsed_s: float
    records: list[PhotoLocalisation] = field(default_factory=list)
    summary: LocalisationSummary | None = None  # on the last item


def localise_dataset(predictor: Predictor, explain_model: Any, dataset: EvalDataset, indices: Sequence[int], *,
                     cancelled: Callable[[], bool] = lambda: False) -> Iterator[LocalisationProgress]:
    t0 = time.perf_counter()
    codes = dataset.taxonomy.head("disease").codes
    records: list[PhotoLocalisation] = []
    total = len(indices)
    for n, i in enumerate(indices, 1):
        if cancelled():
            return
        mpath = dataset.mask_paths[i] if dataset.mask_paths else None
        try:
            image = dataset.images.load(int(i))
            mask = load_mask(mpath, (image.shape[0], image.shape[1])) if mpath is not None else None
        except (MaskError, DermViewerError):
            continue
        if mask is None:
            records.append(photo_localisation(dataset.ids[i], None))
        else:
            pred = predictor.predict(image)
            cls = codes.index(pred.top.code)
            cam = photo_cams(explain_model, image, predictor, [cls])[0]
            records.append(photo_localisation(dataset.ids[i], mask, cam=cam, selected=pred.selected.get("disease"),
                                              grid=pred.grid_size, class_index=cls))
        yield LocalisationProgress(n, total, time.perf_counter() - t0)
    yield LocalisationProgress(total, total, time.perf_counter() - t0, records, summarize_localisation(records))
