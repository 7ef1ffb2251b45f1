"""Localisation figures from models: the shipped bundle on real photos against a hand computation, every fold
model of a `cv` run on its own test fold (localisation-cv), and ``evaluate --masks``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from trainhelp import DATA, REPO, tiny_config

from engine.bundle import load_bundle, save_bundle
from engine.explain import grad_cam, selected_boxes
from engine.imageio import load_image
from engine.masks import MaskSource
from engine.preprocess import PreprocessConfig, preprocess
from training.cli import main
from training.config import load_config
from training.data.pack import PackData
from training.localisation import localisation_markdown, localise, pack_batches, photo_batches, run_localisation_cv
from training.run import load_fold_model, load_folds, run_cv

SHIPPED = REPO / "resources" / "models" / "default.dmvb"
MASKS = DATA / "masks"
PHOTOS = ["PAT_1349_1229_828", "PAT_9_17_80", "PAT_16_24_691", "PAT_20_29_850"]  # the first is 512 x 501


def _by_hand(model: torch.nn.Module, pre: PreprocessConfig, stem: str) -> dict[str, float]:
    """Every figure of one photo with plain numpy: brute-force dilation, token boxes from engine.explain."""
    x = torch.from_numpy(preprocess(load_image(DATA / "images" / f"{stem}.jpg"), pre))
    with torch.no_grad():
        out = model(x[None])
    top = int(out["disease_fused"][0].argmax())
    cam = grad_cam(model, x, class_index=top)
    s = cam.shape[0]
    mask = np.asarray(Image.open(MASKS / f"{stem}.png").convert("L")) > 127
    cov = cv2.resize(mask.astype(np.float32), (s, s), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(cov >= 0.5)
    r2 = (0.02 * s) ** 2

    def near(y: int, x: int) -> bool:
        return bool(((ys - y) ** 2 + (xs - x) ** 2).min() <= r2)

    py, px = np.unravel_index(int(cam.argmax()), cam.shape)
    grid = model.cfg.grid_size  # the model's own token grid (16 or 32 px per token)
    cells = [bool(mask[y0:y1, x0:x1].any()) for x0, y0, x1, y1 in selected_boxes(range(grid[0] * grid[1]), grid,
                                                                                 mask.shape)]
    sel = out["selected_disease"][0].tolist()
    return {"class_index": top, "pointing": float(near(int(py), int(px))), "centre_prior": float(near(s // 2, s // 2)),
            "energy_ratio": float((cam * cov).sum() / cam.sum() / cov.mean()),
            "lsm_hit_rate": float(np.mean([cells[i] for i in sel])), "lsm_chance": float(np.mean(cells))}


def test_the_shipped_model_on_real_photos_matches_a_hand_computation() -> None:
    b = load_bundle(SHIPPED)
    model = b.build_model()
    masks = MaskSource.open(MASKS / "masks.csv")
    photos = [DATA / "images" / f"{s}.jpg" for s in PHOTOS]
    got = localise(model, photo_batches(photos, b.preprocess, batch_size=2), masks, b.taxonomy.head("disease").codes,
                   progress=False)
    assert [Path(p.figures.image).stem for p in got] == PHOTOS and all(p.figures.status == "ok" for p in got)
    hand = _by_hand(model, b.preprocess, PHOTOS[0])
    fig = got[0].figures
    assert fig.class_index == hand["class_index"]
    assert got[0].predicted == b.taxonomy.head("disease").codes[fig.class_index]
    assert fig.pointing == hand["pointing"] and fig.centre_prior == hand["centre_prior"]
    assert fig.lsm_hit_rate == pytest.approx(hand["lsm_hit_rate"])
    assert fig.lsm_chance == pytest.approx(hand["lsm_chance"])
    assert fig.energy_ratio == pytest.approx(hand["energy_ratio"], rel=1e-3)
    assert 0 < fig.lsm_chance < 1 and fig.energy_ratio > 0
    polls: list[int] = []

    def stop_after_one_batch() -> bool:
        polls.append(1)
        return len(polls) > 1

    part = localise(model, photo_batches(photos, b.preprocess, batch_size=2), masks, ["?"] * 6, progress=False,
                    should_stop=stop_after_one_batch)
    assert [p.figures for p in part] == [p.figures for p in got[:2]]  # cancelled between batches


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory: pytest.TempPathFactory, tiny_pack: PackData) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("loccv")
    cfg = tiny_config(tmp, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1}, cv={"final_fit": False})
    return run_cv(cfg, out=tmp / "cv", log=lambda *_: None)


def test_localisation_cv_scores_each_fold_model_on_its_own_test_fold(tiny_cv: Path, tiny_pack: PackData,
                                                                     tmp_path: Path) -> None:
    full = MaskSource.open(MASKS)
    dropped = tiny_pack.ids[0]
    masks = MaskSource({k: v for k, v in full.items() if k != Path(dropped).stem}, MASKS)
    out = run_localisation_cv(tiny_cv, masks, out=tmp_path / "loc", progress=False, log=lambda *_: None)
    result = json.loads((out / "localisation_cv.json").read_text())
    folds = load_folds(tiny_cv / "folds.json", tiny_pack)
    assert [f["n_photos"] for f in result["folds"]] == [len(folds.test_indices(f)) for f in range(folds.k)]
    assert sum(f["n_no_mask"] for f in result["folds"]) == 1  # the photo without a mask is counted, not dropped
    assert result["pooled"]["n_photos"] == len(tiny_pack)
    for key in ("pointing_game", "centre_prior", "lsm_hit_rate", "lsm_chance", "energy_ratio"):
        values = [f[key] for f in result["folds"]]
        assert result["summary"][key]["n"] == 2
        assert result["summary"][key]["mean"] == pytest.approx(float(np.mean(values)))
        assert result["summary"][key]["std"] == pytest.approx(float(np.std(values, ddof=1)))
    with (out / "localisation.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(tiny_pack)
    fold_of = {tiny_pack.ids[i]: str(f) for f in range(folds.k) for i in folds.test_indices(f)}
    assert all(fold_of[r["image"]] == r["fold"] for r in rows)
    assert [r["status"] for r in rows if r["image"] == dropped] == ["no_mask"]
    # a fold-1 row is what fold 1's own model gives on that photo, not what fold 0's model gives
    row = next(r for r in rows if r["fold"] == "1" and r["status"] == "ok")
    cfg = load_config(tiny_cv / "config.yaml")
    at = np.array([tiny_pack.ids.index(row["image"])])
    codes = tiny_pack.taxonomy.head("disease").codes
    again = {}
    for f in (0, 1):
        model, mcfg = load_fold_model(tiny_cv / f"fold{f}", tiny_pack.taxonomy)
        again[f] = localise(model, pack_batches(cfg, tiny_pack, at, mcfg), masks, codes, progress=False)[0].figures
    assert float(row["energy_ratio"]) == pytest.approx(again[1].energy_ratio, rel=1e-4)
    assert float(row["energy_ratio"]) != pytest.approx(again[0].energy_ratio, rel=1e-4)
    assert int(row["class_index"]) == again[1].class_index and row["predicted"] == codes[again[1].class_index]
    assert "± " in (out / "localisation.md").read_text()


def test_cli_localisation_cv_and_evaluate_with_masks(tiny_cv: Path, tiny_pack: PackData, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localisation-cv", str(tiny_cv), "--masks", str(MASKS / "masks.csv"), "--quiet",
                 "--out", str(tmp_path / "loc")]) == 0
    assert (tmp_path / "loc" / "localisation_cv.json").is_file()
    assert main(["localisation-cv", str(tmp_path), "--masks", str(MASKS)]) == 2  # not a cv run
    assert main(["localisation-cv", str(tiny_cv), "--masks", str(tmp_path / "none")]) == 2  # no such masks
    assert "MaskError" not in capsys.readouterr().err

    model, mcfg = load_fold_model(tiny_cv / "fold0", tiny_pack.taxonomy)
    bundle = save_bundle(tmp_path / "tiny.dmvb", model, model_config=mcfg, taxonomy=tiny_pack.taxonomy,
                         preprocess=PreprocessConfig(img_size=mcfg.img_size), name="tiny")
    code = main(["evaluate", "--bundle", str(bundle), "--masks", str(MASKS), "--quiet", "--out", str(tmp_path / "ev"),
                 "--set", f"data.pack={tiny_pack.path}", "--set", "data.pack_size=112",
                 "--set", f"output_dir={tmp_path}"])
    assert code == 0
    err = capsys.readouterr().err
    assert "disease_fused.balanced_accuracy" in err and "Grad-CAM pointing game (%)" in err
    with (tmp_path / "ev" / "localisation.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(tiny_pack) and {r["bundle"] for r in rows} == {"tiny.dmvb"}
    summary = json.loads((tmp_path / "ev" / "localisation.json").read_text())["bundles"]["tiny.dmvb"]
    assert summary["n_photos"] == len(tiny_pack)
    pointing = [float(r["pointing"]) for r in rows if r["status"] == "ok"]
    assert summary["pointing_game"] == pytest.approx(np.mean(pointing))


def test_the_markdown_table_reads_single_summaries_and_fold_stats() -> None:
    single = {"pointing_game": 0.25, "centre_prior": 0.9, "lsm_hit_rate": 0.5, "lsm_chance": 0.2,
              "energy_ratio": 1.5, "n_scored": 10, "n_no_mask": 2}
    folds = {k: {"mean": v, "std": 0.1, "n": 2} for k, v in single.items()}
    table = localisation_markdown({"a": single, "b": folds})
    assert "| a | 25.0 | 90.0 | 50.0 | 20.0 | 1.50 | 10 | 2 |" in table
    assert "| b | 25.0 ± 10.0 | 90.0 ± 10.0 |" in table and "| 1.50 ± 0.10 | 20 | 4 |" in table
