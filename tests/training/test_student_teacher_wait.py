"""A student run distils each fold from that fold's finished teacher, and can run behind a teacher still training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainhelp import tiny_config

import training.run as run_mod
from training.config import ConfigError
from training.data.pack import PackData


def _unfinish(ckpt: Path) -> dict:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    torch.save({**state, "epoch": state["epoch"] - 1}, ckpt)  # as if the teacher were mid-training
    return state


def test_student_waits_for_an_unfinished_teacher_fold(tmp_path: Path, tiny_pack: PackData,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    teacher_cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1},
                              cv={"final_fit": False})
    teacher = run_mod.run_cv(teacher_cfg, out=tmp_path / "teacher", log=lambda *_: None)
    ckpt = teacher / "fold0" / "last.pt"
    finished = _unfinish(ckpt)

    student_cfg = tiny_config(tmp_path, tiny_pack.path, model={"overrides": {"img_size": 64, "head_depth": 1}},
                              distill={"teacher_run": str(teacher)})
    with pytest.raises(ConfigError, match="stopped at epoch 0 of 1"):
        run_mod._student_kwargs(student_cfg, tiny_pack, teacher / "fold0", log=lambda *_: None)

    student_cfg.distill.wait_for_teacher = True
    sleeps: list[float] = []

    def teacher_finishes(seconds: float) -> None:  # the teacher's fold ends while the student waits
        sleeps.append(seconds)
        torch.save(finished, ckpt)

    monkeypatch.setattr(run_mod.time, "sleep", teacher_finishes)
    said: list[str] = []
    kw = run_mod._student_kwargs(student_cfg, tiny_pack, teacher / "fold0", log=said.append)
    assert len(sleeps) == 1 and any("waiting for the teacher's fold0" in s for s in said)
    assert kw["mcfg"].img_size == 64 and kw["extra_loss"].teacher_size == 96  # dermimitformer_tiny's input
