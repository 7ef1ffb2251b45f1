"""A student run distils each fold from that fold's finished teacher, and can run behind a teacher still training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainhelp import tiny_config

import training.distill as distill
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


class _FakeClock:
    """time.sleep advances this clock instead of sleeping; more than ``limit`` sleeps means 'waits forever'."""

    def __init__(self, limit: int = 50) -> None:
        self.now, self.sleeps, self.limit = 0.0, [], limit

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > self.limit:
            raise AssertionError(f"still waiting after {len(self.sleeps)} polls")
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    c = _FakeClock()
    monkeypatch.setattr(distill, "_clock", c, raising=False)  # raising=False: the test also runs on the old code
    monkeypatch.setattr(run_mod.time, "sleep", c.sleep)
    return c


def test_a_student_gives_up_on_a_teacher_that_stopped_writing_checkpoints(
        tmp_path: Path, tiny_pack: PackData, clock: _FakeClock) -> None:
    teacher_cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 1, "max_steps_per_epoch": 1},
                              cv={"final_fit": False, "only_folds": [0]})
    teacher = run_mod.run_cv(teacher_cfg, out=tmp_path / "teacher", log=lambda *_: None)
    _unfinish(teacher / "fold0" / "last.pt")  # a teacher that crashed mid-fold: its checkpoint never changes
    student_cfg = tiny_config(tmp_path, tiny_pack.path, distill={"teacher_run": str(teacher),
                                                                 "wait_for_teacher": True, "wait_timeout_min": 5})
    with pytest.raises(ConfigError, match=r"gave up waiting for the teacher's fold0.*no checkpoint for 5 min") as ei:
        run_mod._student_kwargs(student_cfg, tiny_pack, teacher / "fold0", log=lambda *_: None)
    assert not isinstance(ei.value, distill.TeacherNotReady)
    assert "stopped at epoch 0 of 1" in str(ei.value)
    assert sum(clock.sleeps) == pytest.approx(300)


def test_a_live_teacher_resets_the_timeout(tmp_path: Path, clock: _FakeClock) -> None:
    """The timeout counts from the teacher run's last checkpoint: a teacher still writing them is waited for."""
    fold = tmp_path / "teacher" / "fold1"
    (tmp_path / "teacher" / "fold0").mkdir(parents=True)
    polls = iter(range(100))

    def load() -> str:
        i = next(polls)
        if i == 20:
            return "teacher"
        (tmp_path / "teacher" / "fold0" / "last.pt").write_bytes(b"x" * (i + 1))  # an epoch of fold0 ends
        raise distill.TeacherNotReady("fold1 not started", fold / "last.pt")

    said: list[str] = []
    assert distill.wait_for_teacher(load, fold, timeout_s=60, poll_s=30, log=said.append) == "teacher"
    assert clock.now == 20 * 30 > 60  # waited far longer than the timeout, since the teacher kept progressing
    assert len(said) == 1 and "fold1" in said[0]


@pytest.mark.parametrize("broken", ["no run config", "bad yaml", "corrupt checkpoint", "epoch beyond the run"])
def test_a_teacher_problem_that_waiting_cannot_fix_fails_at_once(
        tmp_path: Path, tiny_pack: PackData, clock: _FakeClock, broken: str) -> None:
    teacher = tmp_path / "teacher"
    (teacher / "fold0").mkdir(parents=True)
    if broken != "no run config":
        (teacher / "config.yaml").write_text("train: {epochs: 2}\n" if broken != "bad yaml" else "train: [1,\n")
    if broken == "corrupt checkpoint":
        (teacher / "fold0" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    if broken == "epoch beyond the run":
        torch.save({"epoch": 7, "model": {}}, teacher / "fold0" / "last.pt")
    student_cfg = tiny_config(tmp_path, tiny_pack.path, distill={"teacher_run": str(teacher),
                                                                 "wait_for_teacher": True})
    with pytest.raises(ConfigError) as ei:
        run_mod._student_kwargs(student_cfg, tiny_pack, teacher / "fold0", log=lambda *_: None)
    assert not isinstance(ei.value, distill.TeacherNotReady)
    assert clock.sleeps == []  # refused without a single wait
    assert str(teacher) in str(ei.value)
