"""ensemble-oof: the summed-probability ensemble of finished cv runs, from their out-of-fold predictions."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from trainhelp import tiny_config

from training.cli import main
from training.config import ConfigError
from training.data.pack import PackData
from training.ensemble import combine_runs, read_oof
from training.run import run_cv


@pytest.fixture(scope="module")
def two_runs(tiny_pack: PackData, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("ens")
    runs = []
    for seed, name in ((0, "a"), (1, "b")):
        cfg = tiny_config(tmp / name, tiny_pack.path, model={"name": "dermimitformer_tiny"},
                          train={"epochs": 1, "max_steps_per_epoch": 2, "seed": seed}, cv={"final_fit": False})
        runs.append(run_cv(cfg, out=tmp / "runs" / name, log=lambda *_: None))
    return runs


def test_each_run_alone_scores_as_its_own_cv_and_the_pair_sums_probabilities(two_runs: list[Path]) -> None:
    methods, table = combine_runs(two_runs, log=lambda *_: None)
    assert list(methods) == ["a", "b", "a + b"]
    single = methods["a"]
    own = json.loads((two_runs[0] / "metrics.json").read_text())["folds"]
    for mine, theirs in zip(single, own, strict=True):  # a run alone is exactly its own CV's figures
        assert mine["disease_fused"]["macro_f1"] == pytest.approx(theirs["disease_fused"]["macro_f1"])
    pa, pb = (read_oof(r / "oof_predictions.h5") for r in two_runs)
    mean = (pa.probs["disease_fused"] + pb.probs["disease_fused"]) / 2
    pair = methods["a + b"]
    assert pa.fold is not None
    for f, fold in enumerate(pair):  # the pair's accuracy is that of the mean probabilities' top-1
        sel = pa.fold == f
        with h5py.File(two_runs[0] / "oof_predictions.h5") as h:
            order = np.argsort(h["pack_index"][()])
            y = h["labels/disease"][()][order][sel]
            keep = ~h["eval_exclude"][()][order][sel]
        acc = float(np.mean(mean[sel].argmax(1)[keep] == y[keep]))
        assert fold["disease_fused"]["accuracy"] == pytest.approx(acc)
    assert table.count("\n") >= 4 and "Macro-F1" in table


def test_runs_on_other_folds_are_refused(two_runs: list[Path], tiny_pack: PackData, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, model={"name": "dermimitformer_tiny"},
                      train={"epochs": 1, "max_steps_per_epoch": 1}, cv={"final_fit": False, "seed": 7})
    other = run_cv(cfg, out=tmp_path / "other", log=lambda *_: None)
    with pytest.raises(ConfigError, match="other photos or folds"):
        combine_runs([two_runs[0], other], log=lambda *_: None)


def test_cli_writes_the_table(two_runs: list[Path], tmp_path: Path) -> None:
    assert main(["ensemble-oof", *map(str, two_runs), "--out", str(tmp_path / "e")]) == 0
    assert "| Method |" in (tmp_path / "e" / "ensembles.md").read_text()
    assert len(json.loads((tmp_path / "e" / "ensembles.json").read_text())["methods"]) == 3


def test_runs_of_the_same_folder_name_keep_their_own_rows(two_runs: list[Path], tmp_path: Path) -> None:
    import shutil

    twin = tmp_path / "elsewhere" / "a"
    shutil.copytree(two_runs[0], twin)
    methods, _ = combine_runs([two_runs[0], twin], log=lambda *_: None)
    assert len(methods) == 3 and str(twin) in methods
