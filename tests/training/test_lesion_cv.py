"""lesion-cv on real photos and masks (a tiny run), and the threshold chosen leaving one fold out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.lesions import LesionFinder
from training.lesion_seg import SegConfig, run_lesion_cv, threshold_cv

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (DATA / "masks").is_dir():
        pytest.fail(f"lesion masks not found at {DATA / 'masks'}; tests run with ../shared beside the repo")
    out = tmp_path_factory.mktemp("seg") / "run"
    cfg = SegConfig(size=64, epochs=1, batch_size=8, limit=30, folds=3, threads=1)
    return run_lesion_cv(cfg, SPEC, DATA / "masks", out, log=lambda s: None)


def test_a_run_scores_each_masked_test_photo_once_and_exports_a_finder(tiny_run: Path) -> None:
    res = json.loads((tiny_run / "lesion_cv.json").read_text())
    assert len(res["folds"]) == 3 and 0.0 <= res["summary"]["dice"]["mean"] <= 1.0
    rows = (tiny_run / "lesion_cv.csv").read_text().splitlines()[1:]
    ids = [r.split(",")[0] for r in rows]
    assert len(ids) == len(set(ids)) == 30  # the 30 masked photos of the limit, each in one test fold
    assert LesionFinder(tiny_run / "lesion_finder.onnx").threshold == 0.5


def test_each_fold_takes_the_threshold_best_on_the_other_folds(tiny_run: Path, tmp_path: Path) -> None:
    thresholds = [0.3, 0.5, 0.7]
    out = threshold_cv(tiny_run, SPEC, DATA / "masks", tmp_path / "t", thresholds, log=lambda s: None)
    choice = json.loads((out / "threshold_cv.json").read_text())
    dice = {float(t): v for t, v in choice["dice_per_fold"].items()}
    for f, chosen in enumerate(choice["chosen_per_fold"]):
        others = {t: np.mean([d for g, d in enumerate(v) if g != f]) for t, v in dice.items()}
        best = max(others.values())
        assert others[chosen] == pytest.approx(best)  # never its own fold's figure
    # the nested figures are each fold's Dice at its own choice
    nested = json.loads((out / "lesion_cv.json").read_text())
    for f, chosen in enumerate(choice["chosen_per_fold"]):
        assert nested["folds"][f]["dice"] == pytest.approx(dice[chosen][f])
    final = choice["final_threshold"]
    assert np.mean(dice[final]) == pytest.approx(max(np.mean(v) for v in dice.values()))
    assert LesionFinder(out / "lesion_finder.onnx").threshold == pytest.approx(final)
    table = (out / "threshold_cv.md").read_text()
    assert table.count("\n| 0.") == 3 and f"uses {final:g}" in table


def test_thresholds_outside_zero_one_are_refused(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        threshold_cv(tiny_run, SPEC, DATA / "masks", tmp_path / "bad", [0.5, 1.0], log=lambda s: None)
