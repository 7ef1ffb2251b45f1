"""K-fold splits: no patient in two folds, diagnosis stratification roughly holds, seeded, saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from trainhelp import SPEC

from training.data.manifest import read_manifest
from training.data.spec import load_spec
from training.data.splits import Folds, grouped_holdout, make_folds


def test_folds_group_patients_and_stratify(tmp_path: Path) -> None:
    m = read_manifest(load_spec(SPEC))
    y = m.labels["disease"]
    folds = make_folds(y, m.groups, m.ids, k=5, seed=0)
    assert (folds.fold_of >= 0).all()
    groups = np.array(m.groups)
    for g in np.unique(groups):
        assert len(np.unique(folds.fold_of[groups == g])) == 1, g
    overall = np.bincount(y, minlength=6) / len(y)
    for f in range(5):
        te = folds.test_indices(f)
        assert abs(len(te) - len(y) / 5) < 0.1 * len(y)
        frac = np.bincount(y[te], minlength=6) / len(te)
        assert np.abs(frac - overall).max() < 0.06
    again = make_folds(y, m.groups, m.ids, k=5, seed=0)
    assert np.array_equal(again.fold_of, folds.fold_of)
    other = make_folds(y, m.groups, m.ids, k=5, seed=1)
    assert not np.array_equal(other.fold_of, folds.fold_of)
    loaded = Folds.load(folds.save(tmp_path / "folds.json"), m.ids, m.groups)
    assert np.array_equal(loaded.fold_of, folds.fold_of)


def test_grouped_holdout_keeps_patients_apart() -> None:
    m = read_manifest(load_spec(SPEC))
    tr, va = grouped_holdout(m.labels["disease"], m.groups, np.arange(len(m)), 0.2, seed=0)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == len(m)
    assert not ({m.groups[i] for i in tr} & {m.groups[i] for i in va})
    assert 0.1 < len(va) / len(m) < 0.3
