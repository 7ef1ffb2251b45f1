"""`lesion-crop-compare` on the shipped default's real out-of-fold predictions (issue 15).

The command had no test and crashed on its first real run (a TypedDict read as an object). Here the crop
run is the same predictions, rows shuffled, so each answer must score the same as the card's figures, and a
crop run on other folds must be refused rather than compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import resources
from training.crop_compare import compare_crops, read_oof

OOF = Path(resources.__file__).parent / "models" / "default.oof.h5"


def _shuffled_copy(src: Path, dst: Path, *, shift_folds: bool = False) -> Path:
    dst.mkdir(parents=True)
    out = dst / "oof_predictions.h5"
    shutil.copy(src, out)
    with h5py.File(out, "r+") as f:
        n = len(f["ids"])
        perm = np.random.default_rng(0).permutation(n)
        def shuffle(ds: h5py.Dataset) -> None:
            if ds.shape and ds.shape[0] == n:
                ds[...] = ds[()][perm]
        f.visititems(lambda _name, obj: shuffle(obj) if isinstance(obj, h5py.Dataset) else None)
        if shift_folds:
            f["fold"][...] = (f["fold"][()] + 1) % (int(f["fold"][()].max()) + 1)
    return dst


def test_identical_answers_score_identically_whatever_the_row_order(tmp_path: Path) -> None:
    crop_run = _shuffled_copy(OOF, tmp_path / "crop_run")
    out = compare_crops(OOF, crop_run, tmp_path / "cmp", log=lambda _msg: None)
    result = json.loads((out / "crop_compare.json").read_text())
    s = result["summary"]
    assert s["whole photo"] == s["lesion crop"] == s["both (mean of the two)"]
    assert len(result["per_fold"]["whole photo"]) == len(set(read_oof(OOF)["fold"].tolist()))
    table = (out / "crop_compare.md").read_text()
    assert table.count("|") > 12 and "whole photo" in table and "lesion crop" in table and "±" in table


def test_a_crop_run_on_other_folds_is_refused(tmp_path: Path) -> None:
    crop_run = _shuffled_copy(OOF, tmp_path / "crop_run", shift_folds=True)
    with pytest.raises(ValueError, match="different folds"):
        compare_crops(OOF, crop_run, tmp_path / "cmp", log=lambda _msg: None)
