"""Which photos the gallery shows: a confusion-matrix cell, filters that combine, and a sort order.

:class:`PhotoTable` holds one row of facts per photo (true and predicted class, confidence, loss,
margin, subgroups, flags); a :class:`PhotoFilter` is a conjunction of optional conditions over it, so
"misclassified melanomas on the back of Fitzpatrick II patients" is one filter. A cell of the
confusion matrix is just the filter ``true = i, predicted = j`` over the scored photos, which is why
its count always equals what its click shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.metrics import scored_mask
from dermviewer.state.research.result import EvalResult

__all__ = ["SORT_KEYS", "PhotoFilter", "PhotoTable", "cell_filter"]

SORT_KEYS = ("confidence", "loss", "margin", "index")


@dataclass
class PhotoTable:
    true: np.ndarray  # (N,) -1 unknown
    pred: np.ndarray  # (N,) -1 not predicted
    confidence: np.ndarray  # max probability
    loss: np.ndarray  # cross-entropy of the true class (NaN if unknown)
    margin: np.ndarray  # top-1 minus top-2 probability
    scored: np.ndarray
    subgroups: dict[str, np.ndarray]  # body_part, fitzpatrick, sex, age_band -> (N,) str
    label_conflict: np.ndarray
    has_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.true)

    @property
    def correct(self) -> np.ndarray:
        return (self.true >= 0) & (self.pred == self.true)

    @classmethod
    def build(cls, dataset: EvalDataset, result: EvalResult) -> PhotoTable:
        p = np.asarray(result.disease, np.float64)
        finite = np.isfinite(p).all(axis=1) & result.done
        safe = np.where(finite[:, None], p, 0.0)
        srt = np.sort(safe, axis=1)
        true = dataset.disease
        rows = np.arange(len(true))
        p_true = np.where(true >= 0, safe[rows, np.clip(true, 0, None)], np.nan)
        with np.errstate(divide="ignore"):
            loss = np.where(finite & (true >= 0), -np.log(np.clip(p_true, 1e-12, 1.0)), np.nan)
        conflict = dataset.flag("label_conflict")
        return cls(
            true=true, pred=result.predicted(), confidence=np.where(finite, srt[:, -1], np.nan), loss=loss,
            margin=np.where(finite, srt[:, -1] - srt[:, -2], np.nan), scored=scored_mask(dataset, result),
            subgroups={c: np.array(dataset.subgroup(c), dtype=object)
                       for c in ("body_part", "fitzpatrick", "sex", "age_band")},
            label_conflict=conflict, has_mask=dataset.has_mask,
        )

    def order(self, indices: np.ndarray, key: str = "confidence", descending: bool = True) -> np.ndarray:
        """``indices`` sorted by a key; NaN keys go last either way; ties keep photo order."""
        if key not in SORT_KEYS:
            raise ValueError(f"sort key must be one of {SORT_KEYS}, got {key!r}")
        if key == "index":
            return np.sort(indices)[::-1] if descending else np.sort(indices)
        values = getattr(self, key)[indices].astype(np.float64)
        finite = np.isfinite(values)
        values = np.where(finite, values, 0.0)
        sortkey = -values if descending else values
        order = np.lexsort((indices, sortkey, ~finite))
        return np.asarray(indices[order])


@dataclass(frozen=True)
class PhotoFilter:
    """Every set condition must hold (empty/None = no condition). Class conditions are index sets."""

    true_class: frozenset[int] | None = None
    pred_class: frozenset[int] | None = None
    subgroups: dict[str, frozenset[str]] = field(default_factory=dict)
    correct: bool | None = None
    label_conflict: bool | None = None
    has_mask: bool | None = None
    scored_only: bool = True

    def with_(self, **changes: object) -> PhotoFilter:
        return replace(self, **changes)  # type: ignore[arg-type]

    def mask(self, table: PhotoTable) -> np.ndarray:
        keep = table.scored.copy() if self.scored_only else np.ones(len(table), bool)
        if self.true_class is not None:
            keep &= np.isin(table.true, list(self.true_class))
        if self.pred_class is not None:
            keep &= np.isin(table.pred, list(self.pred_class))
        for column, values in self.subgroups.items():
            if values:
                keep &= np.isin(table.subgroups[column], list(values))
        if self.correct is not None:
            keep &= table.correct == self.correct
        if self.label_conflict is not None:
            keep &= table.label_conflict == self.label_conflict
        if self.has_mask is not None:
            keep &= table.has_mask == self.has_mask
        return keep

    def indices(self, table: PhotoTable) -> np.ndarray:
        return np.flatnonzero(self.mask(table))


def cell_filter(true_index: int, pred_index: int, base: PhotoFilter | None = None) -> PhotoFilter:
    """The photos of confusion-matrix cell (true, predicted), on top of any other filter."""
    return (base or PhotoFilter()).with_(true_class=frozenset({true_index}), pred_class=frozenset({pred_index}))

