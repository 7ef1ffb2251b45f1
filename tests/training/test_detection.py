"""Detection-based classification (issue 15, He et al.): boxes from masks, the paper's top-box rule, a short
CV on real PAD-UFES-20 photos and masks, and the comparison with a whole-photo classifier's folds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import resources
from training.detection import (
    DetConfig,
    box_from_mask,
    compare_with_classifier,
    disease_scores,
    run_detect_cv,
    top_box,
    train_detector,
    write_comparison,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


@pytest.fixture(scope="module")
def masks_dir() -> Path:
    if not (DATA / "masks").is_dir():
        pytest.fail(f"lesion masks not found at {DATA / 'masks'}; tests run with ../shared beside the repo")
    return DATA / "masks"


def test_the_box_is_the_largest_region_of_the_mask() -> None:
    m = np.zeros((50, 60), bool)
    m[10:20, 5:9] = True  # 40 px
    m[30:45, 20:40] = True  # 300 px: the lesion
    assert box_from_mask(m) == (20, 30, 40, 45)
    assert box_from_mask(np.zeros((8, 8), bool)) is None


def test_the_photo_takes_the_class_of_its_highest_scoring_box() -> None:
    det = {"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 30, 30], [1, 1, 2, 2]]),
           "scores": torch.tensor([0.3, 0.8, 0.5]), "labels": torch.tensor([2, 4, 2])}
    label, score, box = top_box(det)
    assert (label, round(score, 3), box) == (4, 0.8, [5.0, 5.0, 30.0, 30.0])
    np.testing.assert_allclose(disease_scores(det, 6), [0, 0, 0.5, 0, 0.8, 0])
    empty = {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    assert top_box(empty) is None


def test_training_moves_the_heads_and_the_unfrozen_stages_only(masks_dir: Path) -> None:
    """One epoch on 16 real photos and their masks: the ImageNet stem and first stages stay as loaded,
    the later encoder stages, the pyramid and the RetinaNet heads learn."""
    import cv2

    from engine.imageio import load_image
    from engine.masks import MaskSource
    from training.detection import build_detector

    src = MaskSource.open(masks_dir)
    paths = [p for p in sorted((DATA / "images").glob("*.jpg")) if src.path_for(p) is not None][:16]
    assert len(paths) == 16
    images, masks = [], []
    for p in paths:
        rgb = load_image(p)
        images.append(cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(src.load(p, rgb.shape[:2]).astype(np.uint8), (128, 128),
                                interpolation=cv2.INTER_NEAREST))
    cfg = DetConfig(size=128, epochs=1, batch_size=8, frozen_stages=2)
    torch.manual_seed(0)  # as train_detector(seed=0) does before building: the same initial heads
    before = {k: v.clone() for k, v in build_detector(cfg, 6).state_dict().items()}
    logs: list[str] = []
    after = train_detector(cfg, images, masks, np.arange(16) % 6, 6, seed=0, desc="t", log=logs.append).state_dict()
    assert len(logs) == 1 and "loss" in logs[0]

    def moved(prefix: str) -> bool:
        keys = [k for k in before if k.startswith(prefix) and before[k].dtype.is_floating_point
                and "running" not in k]
        assert keys, prefix
        return any(not torch.equal(before[k], after[k]) for k in keys)

    assert not moved("backbone.stem.") and not moved("backbone.blocks.0.") and not moved("backbone.blocks.1.")
    assert moved("backbone.blocks.5.") and moved("backbone.fpn.") and moved("head.classification_head.")
    assert moved("head.regression_head.")


def test_a_short_cv_scores_every_test_photo_and_compares_on_the_classifiers_folds(masks_dir: Path,
                                                                                  tmp_path: Path) -> None:
    cfg = DetConfig(size=128, epochs=1, batch_size=8, limit=40, folds=5)
    out = run_detect_cv(cfg, SPEC, masks_dir, tmp_path / "det", log=lambda s: None)
    res = json.loads((out / "detect_cv.json").read_text())
    assert len(res["folds"]) == 5 and res["classes"] == ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
    with (out / "oof_detections.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert 30 <= len(rows) <= 40 and len({r["id"] for r in rows}) == len(rows)
    for r in rows:  # one epoch from the focal-loss prior: most photos have no box yet, and each counts as wrong
        if not r["pred"]:
            assert r["score"] == "" and r["box_iou"] == ""
    missed = [r for r in rows if not r["pred"]]
    no_det = np.mean([f["no_detection_rate"] for f in res["folds"]])
    assert no_det == pytest.approx(len(missed) / len(rows), abs=0.1)
    cmp = compare_with_classifier(out, resources.default_model_path().with_suffix(".oof.h5"))
    assert cmp["n_photos"] == len(rows)
    assert len(cmp["macro_f1_difference_per_fold"]) == 5
    assert cmp["summary"]["whole_photo"]["macro_f1"]["mean"] > 0  # the shipped default's out-of-fold calls
    table = write_comparison(out, resources.default_model_path().with_suffix(".oof.h5"), "default").read_text()
    whole = 100 * cmp["summary"]["whole_photo"]["macro_f1"]["mean"]
    assert f"| whole photo (default, out-of-fold) | {whole:.1f} ± " in table
    assert "| detection: the top-scoring box's class" in table and f"{len(rows)} test photos over 5 folds" in table


def test_a_classifier_cross_validated_on_other_folds_is_refused(masks_dir: Path, tmp_path: Path) -> None:
    cfg = DetConfig(size=128, epochs=1, batch_size=8, limit=24, folds=2)
    out = run_detect_cv(cfg, SPEC, masks_dir, tmp_path / "det2", log=lambda s: None)
    with pytest.raises(ValueError, match="other folds"):
        compare_with_classifier(out, resources.default_model_path().with_suffix(".oof.h5"))
