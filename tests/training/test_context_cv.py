"""context-cv: each fold model of a context model's CV run, photo only and with context, on its own test fold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from trainhelp import tiny_config

from engine.context import CONTEXT_FIELDS
from training.cli import main
from training.context_cv import run_context_cv
from training.data.context import complete_rows, pack_contexts
from training.data.pack import PackData
from training.run import load_folds, run_cv


@pytest.fixture(scope="module")
def context_cv_run(tiny_pack: PackData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("ctxcv")
    cfg = tiny_config(tmp, tiny_pack.path, model={"name": "dermimitformer_tiny",
                                                   "overrides": {"context_fields": list(CONTEXT_FIELDS)}},
                      train={"epochs": 1, "max_steps_per_epoch": 2}, cv={"final_fit": False})
    return run_cv(cfg, out=tmp / "cv", log=lambda *_: None)


def test_rows_are_scored_on_the_right_photos(context_cv_run: Path, tiny_pack: PackData) -> None:
    from training.config import load_config

    path = run_context_cv(context_cv_run, load_config(context_cv_run / "config.yaml"), seeds=2, log=lambda *_: None)
    result = json.loads(path.read_text())
    folds = load_folds(context_cv_run / "folds.json", tiny_pack)
    contexts = pack_contexts(tiny_pack)
    for f in range(folds.k):
        te = folds.test_indices(f)
        assert result["complete_photos"][f"fold{f}"] == int(complete_rows([contexts[i] for i in te],
                                                                          CONTEXT_FIELDS).sum())
        # the photo-only row is exactly what the CV run itself scored on that fold
        cv_fold = json.loads((context_cv_run / f"fold{f}" / "metrics.json").read_text())
        assert result["folds"]["photo"][f]["disease_fused.macro_f1"] == pytest.approx(
            cv_fold["disease_fused"]["macro_f1"])
    assert set(result["summary"]) == {"photo", "photo_complete", "context_full", "context_protocol", "absence_only"}
    table = (path.parent / "context_cv.md").read_text()
    assert "absence carries no label" in table and "| Photo only, every test photo |" in table


def test_cli_refuses_a_photo_only_run(tiny_pack: PackData, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1}, cv={"final_fit": False})
    run = run_cv(cfg, out=tmp_path / "cv", log=lambda *_: None)
    assert main(["context-cv", str(run)]) == 2
    assert "takes no clinical context" in capsys.readouterr().err
