"""Dataset-level corruption sweeps (Mishra et al., robustness protocol §2.3; their Table 5 and the
accuracy-vs-severity figures): every chosen corruption at every level over a set of photos.

The clean photos are predicted first by the same model (point ``clean``, level 0), so every curve
starts from what this model says without corruption. Per (corruption, level): accuracy and BMA
(``engine.metrics.classification_report``), the prediction-flip rate (share of photos whose top
diagnosis differs from the clean prediction) and the confusion matrix, so the panel can show the
matrix under any corruption. Corruptions are seeded per
photo (``seed + index``), so a sweep is reproducible. A plain generator: cancel check in, progress out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.evaluation import predictions_to_rows
from engine.corrupt import LEVELS, corrupt
from engine.errors import DermViewerError
from engine.inference import Predictor
from engine.metrics import classification_report

__all__ = ["SweepPoint", "SweepProgress", "sample_indices", "sweep_dataset"]


@dataclass(frozen=True)
class SweepPoint:
    corruption: str
    level: int
    n: int
    accuracy: float
    bma: float
    flip_rate: float
    confusion: np.ndarray


@dataclass(frozen=True)
class SweepProgress:
    done: int  # predictions made
    total: int
    elapsed_s: float
    points: list[SweepPoint] = field(default_factory=list)
    finished: bool = False

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s * (self.total - self.done) / self.done if self.done else None


def sample_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` scored photos, stratified by class (every class keeps its share, at least one)."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(labels >= 0)
    if len(idx) <= n:
        return idx
    chosen: list[int] = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        take = max(1, round(n * len(members) / len(idx)))
        chosen.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return np.sort(np.array(chosen[: max(n, len(np.unique(labels[idx])))], dtype=np.int64))


def sweep_dataset(
    predictor: Predictor,
    dataset: EvalDataset,
    indices: Sequence[int],
    corruptions: Sequence[str],
    levels: Sequence[int] = LEVELS,
    *,
    batch_size: int = 16,
    seed: int = 0,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[SweepProgress]:
    t0 = time.perf_counter()
    images: dict[int, np.ndarray] = {}
    for i in indices:
        try:
            images[int(i)] = dataset.images.load(int(i))
        except DermViewerError:
            continue  # an unreadable photo was already reported by the evaluation
    keep = [i for i in (int(j) for j in indices) if i in images and dataset.disease[i] >= 0]
    y = dataset.disease[keep]
    codes = dataset.taxonomy.head("disease").codes
    total, done = len(keep) * (1 + len(corruptions) * len(levels)), 0
    points: list[SweepPoint] = []
    clean: np.ndarray | None = None
    yield SweepProgress(0, total, 0.0)
    for name, level in [("clean", 0)] + [(c, int(lv)) for c in corruptions for lv in levels]:
        probs = []
        for start in range(0, len(keep), batch_size):
            if cancelled():
                return
            chunk = keep[start : start + batch_size]
            batch = [images[i] if name == "clean" else corrupt(images[i], name, level, seed=seed + i) for i in chunk]
            probs.append(predictions_to_rows(predictor.predict_batch(batch))[0]["disease"])
            done += len(chunk)
            yield SweepProgress(done, total, time.perf_counter() - t0, list(points))
        p = np.concatenate(probs).astype(np.float64)
        p /= p.sum(axis=1, keepdims=True)
        if clean is None:
            clean = p.argmax(axis=1)
        rep = classification_report(y, p, codes, k=(1,))
        flips = float(np.mean(p.argmax(axis=1) != clean))
        points.append(SweepPoint(name, level, len(keep), rep.accuracy, rep.balanced_accuracy, flips, rep.confusion))
        yield SweepProgress(done, total, time.perf_counter() - t0, list(points))
    yield SweepProgress(done, total, time.perf_counter() - t0, list(points), finished=True)
