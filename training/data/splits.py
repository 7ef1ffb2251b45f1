"""K-fold splits stratified by diagnosis and grouped by patient (no patient in two folds), seeded.

Uses scikit-learn's ``StratifiedGroupKFold``. Splits are saved as JSON next to every run so a result
can be re-evaluated on exactly the same partition. A group's label for stratification is the label
of its rows (sklearn takes the per-row labels; patients with several diagnoses are rare).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

__all__ = ["Folds", "grouped_holdout", "make_folds"]


@dataclass
class Folds:
    """``fold_of[i]`` is the test fold of pack row ``i``; ids make the file self-describing."""

    k: int
    seed: int
    fold_of: np.ndarray
    ids: list[str]
    groups: list[str]

    def train_indices(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.fold_of != fold)

    def test_indices(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.fold_of == fold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "seed": self.seed,
            "folds": [
                {"fold": f, "test_ids": [self.ids[i] for i in self.test_indices(f)],
                 "test_indices": self.test_indices(f).tolist()}
                for f in range(self.k)
            ],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, ids: list[str], groups: list[str]) -> Folds:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        index = {v: i for i, v in enumerate(ids)}
        fold_of = np.full(len(ids), -1, dtype=np.int64)
        for entry in data["folds"]:
            for item in entry["test_ids"]:
                if item in index:
                    fold_of[index[item]] = entry["fold"]
        return cls(int(data["k"]), int(data["seed"]), fold_of, ids, groups)


def make_folds(labels: np.ndarray, groups: list[str], ids: list[str], k: int = 5, seed: int = 0) -> Folds:
    """Stratified (by ``labels``) group (by ``groups``) K-fold; raises if k exceeds the number of groups."""
    n_groups = len(set(groups))
    if k < 2 or k > n_groups:
        raise ValueError(f"k must be in [2, {n_groups}] (the number of groups), got {k}")
    y = np.asarray(labels)
    y = np.where(y < 0, y.max() + 1, y)  # unknown labels form their own stratum
    fold_of = np.full(len(y), -1, dtype=np.int64)
    try:
        splits = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, groups))
    except ValueError:  # every class smaller than k (tiny subsets): patient grouping still holds
        splits = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, groups))
    for f, (_, test) in enumerate(splits):
        fold_of[test] = f
    return Folds(k, seed, fold_of, list(ids), list(groups))


def grouped_holdout(
    labels: np.ndarray, groups: list[str], indices: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, val) with about ``fraction`` of the groups in val, stratified."""
    indices = np.asarray(indices)
    if fraction <= 0:
        return indices, indices[:0]
    k = max(2, round(1.0 / fraction))
    sub_groups = [groups[i] for i in indices]
    k = min(k, len(set(sub_groups)))
    folds = make_folds(np.asarray(labels)[indices], sub_groups, [str(i) for i in indices], k=k, seed=seed)
    return indices[folds.fold_of != 0], indices[folds.fold_of == 0]
