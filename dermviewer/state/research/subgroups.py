"""Subgroup metrics (body part, Fitzpatrick type, sex, age band) with bootstrap intervals.

A group with fewer than ``min_photos`` scored photos, or with a single class in it (BMA then says
nothing about telling classes apart), is marked *too small to judge*: its numbers are shown but a
reader must not compare them. Point estimates are ``engine.metrics.classification_report``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermviewer.state.research.bootstrap import Interval, bootstrap_accuracy_bma
from dermviewer.state.research.selection import PhotoTable
from engine.metrics import classification_report

__all__ = ["MIN_PHOTOS", "SubgroupRow", "subgroup_table"]

MIN_PHOTOS = 30


@dataclass(frozen=True)
class SubgroupRow:
    column: str
    value: str
    n: int
    n_classes: int
    accuracy: float
    bma: float
    accuracy_ci: Interval | None
    bma_ci: Interval | None
    too_small: bool


def subgroup_table(table: PhotoTable, probs: np.ndarray, n_classes: int, columns: tuple[str, ...] = (
        "body_part", "fitzpatrick", "sex", "age_band"), *, min_photos: int = MIN_PHOTOS, n_boot: int = 1000,
                   seed: int = 0) -> list[SubgroupRow]:
    """One row per (column, value) over the scored photos; unknown values ('') form their own row."""
    rows: list[SubgroupRow] = []
    names = [str(c) for c in range(n_classes)]
    for column in columns:
        values = table.subgroups[column]
        for value in sorted({str(v) for v in values[table.scored]}, key=lambda v: (v == "", v)):
            sel = table.scored & (values == value)
            n = int(sel.sum())
            y, pred = table.true[sel], table.pred[sel]
            p = np.asarray(probs[sel], np.float64)
            report = classification_report(y, p / p.sum(axis=1, keepdims=True), names, k=(1,))
            present = len(np.unique(y))
            small = n < min_photos or present < 2
            acc_ci, bma_ci = bootstrap_accuracy_bma(y, pred, n_classes, n_boot=n_boot, seed=seed) if n > 1 else (
                None, None)
            rows.append(SubgroupRow(column, value or "(unknown)", n, present, report.accuracy,
                                    report.balanced_accuracy, acc_ci, bma_ci, small))
    return rows
