"""Every ``dermviewer-train`` command end to end on a tiny config (real photos, tmp_path run folders)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
import torch
import yaml
from trainhelp import DATA, SPEC

from engine.bundle import load_bundle
from training.cli import main
from training.config import load_config
from training.data.pack import PackData


def _tiny_yaml(tmp_path: Path, pack: Path) -> Path:
    cfg = {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "dermimitformer_tiny", "overrides": {"depth": 2}},
        "data": {"spec": str(SPEC), "pack": str(pack), "pack_size": 112, "batch_size": 8, "eval_batch_size": 32},
        "optim": {"name": "adamw", "lr": 1e-3, "warmup_epochs": 0.5},
        "train": {"epochs": 1, "max_steps_per_epoch": 1, "amp": "none", "threads": 1, "progress": False},
        "cv": {"folds": 2},
        "distill": {"latency_batches": 1},
        "robustness": {"sweep_levels": [1, 5]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("pack", "train", "cv", "lr-find", "distill", "evaluate", "robustness", "export", "ship"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: dermviewer-train" in capsys.readouterr().out


def test_pack_reports_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", str(SPEC), "--out", str(tmp_path / "p.h5"), "--size", "64", "--limit", "6"]) == 0
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["images"].shape == (6, 64, 64, 3)
    # A copy of a few rows with one broken image, one unknown diagnosis and one unknown body part.
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    lines = (DATA / "manifest.csv").read_text(encoding="utf-8").splitlines()[:6]
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    for r in rows:
        shutil.copy(DATA / r[0], root / r[0])
    (root / rows[0][0]).write_bytes(b"not a jpeg")
    rows[1][header.index("diagnosis_code")] = "XYZ"
    rows[2][header.index("body_part")] = "elbow"
    (root / "manifest.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    assert main(["pack", str(SPEC), "--data-root", str(root), "--out", str(tmp_path / "q.h5"), "--size", "64"]) == 0
    err = capsys.readouterr().err
    assert "unknown code 'XYZ'" in err and "row skipped" in err
    assert "unknown code 'elbow'" in err and "label masked" in err
    assert "unreadable image skipped" in err
    with h5py.File(tmp_path / "q.h5") as f:
        assert len(f["ids"]) == 3
    # A missing required column is a real failure with a clear message.
    (root / "manifest.csv").write_text("image,patient_id\nimages/a.jpg,P1\n", encoding="utf-8")
    assert main(["pack", str(SPEC), "--data-root", str(root), "--out", str(tmp_path / "r.h5")]) == 2
    assert "lacks required column(s) ['diagnosis_code']" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nheads: [1, 2]\n", encoding="utf-8")
    assert main(["pack", str(bad), "--out", str(tmp_path / "s.h5")]) == 2


def test_bad_config_key_is_a_clear_error(tmp_path: Path, tiny_pack: PackData,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _tiny_yaml(tmp_path, tiny_pack.path)
    assert main(["train", str(cfg), "--set", "train.epoch=3"]) == 2
    assert "unknown keys ['epoch']" in capsys.readouterr().err


@pytest.mark.slow
def test_every_command_end_to_end(tmp_path: Path, tiny_pack: PackData) -> None:
    cfg = _tiny_yaml(tmp_path, tiny_pack.path)
    run = tmp_path / "train"
    assert main(["train", str(cfg), "--out", str(run), "--set", "train.val_fraction=0.3", "--quiet"]) == 0
    for name in ("config.yaml", "split.json", "log.jsonl", "epochs.csv", "loss_curve.png", "metrics.json",
                 "best.pt", "last.pt", "tiny.dmvb"):
        assert (run / name).is_file(), name
    assert load_config(run / "config.yaml").train.val_fraction == 0.3
    bundle = load_bundle(run / "tiny.dmvb")
    assert bundle.model_config.depth == 2 and bundle.taxonomy.name == "pad_ufes_20"

    assert main(["train", str(cfg), "--out", str(run), "--resume", str(run / "last.pt"),
                 "--set", "train.epochs=2", "--set", "train.val_fraction=0.3"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2

    cv = tmp_path / "cv"
    assert main(["cv", str(cfg), "--out", str(cv)]) == 0
    assert "| tiny |" in (cv / "table2.md").read_text()
    with h5py.File(cv / "oof_predictions.h5") as f:
        assert f["embeddings"].shape[0] == len(tiny_pack) == f["probs/disease_fused"].shape[0]
        assert set(f["fold"][()]) == {0, 1}
    assert (cv / "folds.json").is_file() and (cv / "tiny.dmvb").is_file()
    shipped = tmp_path / "shipped"
    assert main(["ship", str(cv), "--name", "m", "--dest", str(shipped), "--command", "dermviewer-train cv X",
                 "--ablation", f"same run={cv}", "--failure-mode", "tiny data"]) == 0
    card = (shipped / "m.md").read_text()
    assert "dermviewer-train cv X" in card and "not a medical device" in card.lower()
    assert "| Disease macro-F1 |" in card and "| same run |" in card and "- tiny data" in card
    assert load_bundle(shipped / "m.dmvb").state_dict["head_d.fc.weight"].dtype == torch.float16
    assert (shipped / "m.cv.json").is_file() and (shipped / "m.oof.h5").is_file()

    # a distilled student CV: same folds, each fold seeded from and distilled against that fold's teacher
    student_yaml = tmp_path / "student.yaml"
    student_yaml.write_text(yaml.safe_dump({
        "extends": "tiny.yaml", "name": "tiny_student",
        "model": {"overrides": {"depth": 1, "head_depth": 1, "img_size": 64}},
        "distill": {"teacher_run": str(cv)}}), encoding="utf-8")
    st = tmp_path / "student"
    assert main(["cv", str(student_yaml), "--out", str(st)]) == 0
    assert json.loads((st / "folds.json").read_text()) == json.loads((cv / "folds.json").read_text())
    sb = load_bundle(st / "tiny_student.dmvb").model_config
    assert (sb.depth, sb.head_depth, sb.img_size) == (1, 1, 64)
    # Table 5 on the folds: both runs' fold models on clean and corrupted copies of their own test folds
    rcv = tmp_path / "robust_cv"
    assert main(["robustness-cv", str(cfg), "--run", f"clean={cv}", "--run", f"student={st}", "--no-sweep",
                 "--out", str(rcv)]) == 0
    t5 = (rcv / "table5.md").read_text()
    assert "| clean | salt_and_pepper@5 |" in t5 and "| student | gaussian_blur@3 |" in t5 and "| 2 |" in t5
    rows = json.loads((rcv / "robustness.json").read_text())["results"]
    assert len(rows) == 2 * 2 * 3
    assert sum(r["n"] for r in rows if r["train"] == "clean" and r["test"] == "clean") == len(tiny_pack)
    assert main(["robustness-cv", str(cfg), "--run", f"clean={tmp_path}"]) == 2
    (tmp_path / "nowhere").mkdir()
    assert main(["cv", str(student_yaml), "--out", str(tmp_path / "st2"),
                 "--set", f"distill.teacher_run={tmp_path / 'nowhere'}"]) != 0

    assert main(["lr-find", str(cfg), "--out", str(tmp_path / "lr"), "--steps", "4"]) == 0
    assert (tmp_path / "lr" / "lr_find.png").is_file()

    for mode in ("student", "cascade", "fcvit"):
        out = tmp_path / f"distill_{mode}"
        assert main(["distill", str(cfg), "--mode", mode, "--teacher", str(run / "tiny.dmvb"), "--out", str(out)]) == 0
        table = (out / "distill_table.md").read_text()
        assert "| teacher | 2 |" in table
    assert "| cascade 1 | 1 |" in (tmp_path / "distill_cascade" / "distill_table.md").read_text()
    assert "FCViT L2" in (tmp_path / "distill_fcvit" / "distill_table.md").read_text()

    ev = tmp_path / "eval"
    assert main(["evaluate", str(cfg), "--bundle", str(run / "tiny.dmvb"), "--bundle", str(cv / "tiny.dmvb"),
                 "--split", str(run / "split.json"), "--out", str(ev)]) == 0
    assert "disease_fused" in json.loads((ev / "metrics.json").read_text())

    rb = tmp_path / "robust"
    assert main(["robustness", str(cfg), "--bundle", str(run / "tiny.dmvb"), "--out", str(rb)]) == 0
    table5 = (rb / "table5.md").read_text()
    assert "salt_and_pepper@5" in table5 and "gaussian_blur@3" in table5 and "salt_and_pepper corrupted" in table5
    assert (rb / "severity_sweep.png").is_file()

    ex = tmp_path / "export"
    assert main(["export", str(run / "config.yaml"), "--checkpoint", str(run / "best.pt"), "--out", str(ex)]) == 0
    assert load_bundle(ex / "tiny.dmvb").model_config.depth == 2
    assert main(["export", "--checkpoint", str(run / "best.pt")]) == 2
