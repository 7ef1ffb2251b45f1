"""Distillation with a frozen prefix: the teacher's logits on each epoch's view and context, cached once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trainhelp import REPO, tiny_config

import training.run as run_mod
from training.augment import TrainTransform
from training.config import ConfigError, load_config
from training.data.pack import PackData
from training.distill_cache import CachedDistillLoss, teacher_targets
from training.evaluate import predict

CONTEXT = ["age", "body_part", "itch", "grew", "hurt", "changed", "bleed", "elevation"]
T_MEAN, T_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
AUG = {"cutmix_p": 0.0, "corruptions": ["salt_and_pepper", "gaussian_blur"], "corruption_p": 0.5,
       "context_drop_p": 0.5, "context_drop_all_p": 0.2}


def _quiet(*_: Any) -> None:
    return None


class _Recorder:
    """A numpy Generator that records every draw: (method, arguments, result)."""

    def __init__(self, seed: list[int]) -> None:
        self.rng, self.calls = np.random.default_rng(seed), []

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.rng, name)

        def call(*args: Any, **kw: Any) -> Any:
            out = fn(*args, **kw)
            self.calls.append((name, args, kw, np.asarray(out).tolist()))
            return out

        return call


@pytest.mark.parametrize("crop", ["rrc", "scale_jitter"])
def test_a_views_draws_do_not_depend_on_the_output_size_except_with_scale_jitter(tiny_pack: PackData, crop: str,
                                                                                 tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, augment={**AUG, "crop": crop, "corruption_p": 1.0})
    ds = run_mod.make_dataset(cfg, tiny_pack, np.arange(len(tiny_pack)), run_mod.resolve_model_config(
        cfg, tiny_pack.taxonomy), train=False)
    same = []
    for i in range(6):
        draws = []
        for size in (64, 96, 256):
            rec = _Recorder([cfg.train.seed, 1, i])
            TrainTransform(cfg.augment, size, cfg.data.mean, cfg.data.std)(ds.image(i), rec)  # type: ignore[arg-type]
            draws.append(rec.calls)
        assert draws[0] and all(len(d) > 3 for d in draws)
        same.append(draws[0] == draws[1] == draws[2])
    assert all(same) if crop == "rrc" else not any(same)


def _teacher(tmp_path: Path, pack: PackData, stages: int) -> tuple[Any, Any, Any]:
    tcfg = tiny_config(tmp_path, pack.path, optim={"frozen_stages": stages},
                       data={"mean": list(T_MEAN), "std": list(T_STD)},  # not the student's (0.5)
                       model={"overrides": {"pretrained": True, "context_fields": CONTEXT}})
    torch.manual_seed(1)
    teacher, t_mcfg = run_mod.build_model_from_config(tcfg, pack.taxonomy)
    with torch.no_grad():  # FiLM's last layer starts at zero: give the context a say
        teacher.context_film.net[2].weight.normal_(0, 0.5)
    return teacher.eval(), tcfg, t_mcfg


@pytest.mark.parametrize("teacher_stages", [2, 0])
def test_cached_teacher_logits_are_the_teacher_on_the_students_view_and_context(
        tiny_pack: PackData, tmp_path: Path, teacher_stages: int) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, augment=AUG, optim={"frozen_stages": 2, "frozen_views": 2},
                      train={"epochs": 3},
                      model={"overrides": {"pretrained": True, "img_size": 64, "head_depth": 1,
                                           "context_fields": CONTEXT}})
    s_mcfg = run_mod.resolve_model_config(cfg, tiny_pack.taxonomy)
    teacher, tcfg, t_mcfg = _teacher(tmp_path, tiny_pack, teacher_stages)
    rows = np.arange(3, len(tiny_pack))
    targets = teacher_targets(teacher, tcfg, t_mcfg, cfg, s_mcfg, tiny_pack, rows, cache_dir=tmp_path / "cache",
                              out_path=tmp_path / "fold" / "teacher_logits.npz", log=_quiet)
    assert targets.logits["disease"].shape == (3, len(rows), 6)
    student_set = run_mod.make_dataset(cfg, tiny_pack, rows, s_mcfg, train=True)  # what the student is given
    tf = TrainTransform(cfg.augment, 96, T_MEAN, T_STD)  # the teacher's input size and normalisation
    pick = [9, 0, 4, 13]  # positions in rows, not in order
    contexts = {}
    with torch.no_grad():
        for e in range(3):
            student_set.set_epoch(e)
            x = torch.stack([tf(student_set.image(int(rows[k])), np.random.default_rng([0, e % 2, int(rows[k])]))
                             for k in pick])
            contexts[e] = torch.stack([student_set[k]["context"] for k in pick])
            want = teacher(x, contexts[e])
            for key in ("disease", "disease_fused"):
                got = torch.from_numpy(targets.lookup(key, e, rows[pick]))
                atol = 2e-2 if teacher_stages else 1e-4  # the teacher's prefix features are cached in fp16
                assert torch.allclose(got, want[key], atol=atol), (e, key, (got - want[key]).abs().max())
    assert not torch.equal(contexts[0], contexts[2])  # epoch 2 shows view 0 again, with its own context
    fused = targets.logits["disease_fused"]  # the context enters the fused head (FiLM), not the image-only one
    assert not np.allclose(fused[0], fused[2], atol=1e-3)
    with pytest.raises(IndexError):
        targets.lookup("disease", 0, np.array([0]))  # row 0 is not a training row
    again = teacher_targets(teacher, tcfg, t_mcfg, cfg, s_mcfg, tiny_pack, rows, cache_dir=tmp_path / "cache",
                            out_path=tmp_path / "fold" / "teacher_logits.npz", log=(said := []).append)
    assert any("reusing" in s for s in said) and np.array_equal(again.logits["disease"], targets.logits["disease"])


def _kl_to(teacher_probs: np.ndarray, probs: np.ndarray) -> float:
    p, q = np.clip(teacher_probs, 1e-7, 1), np.clip(probs, 1e-7, 1)
    return float((p * (np.log(p) - np.log(q))).sum(1).mean())


def test_a_frozen_prefix_cv_student_moves_toward_its_teacher(tiny_pack: PackData, tmp_path: Path) -> None:
    model = {"name": "dermimitformer_tiny", "overrides": {"pretrained": True, "context_fields": CONTEXT}}
    common = {"augment": AUG, "optim": {"frozen_stages": 2, "frozen_views": 2}, "cv": {"final_fit": False,
                                                                                        "only_folds": [0]}}
    teacher_cfg = tiny_config(tmp_path, tiny_pack.path, model=model, train={"epochs": 3}, **common)
    teacher_run = run_mod.run_cv(teacher_cfg, out=tmp_path / "teacher", log=_quiet)
    kl = {}
    for alpha in (0.0, 3.0):
        cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 4}, **common,
                          model={"overrides": {**model["overrides"], "img_size": 64, "head_depth": 1}},
                          distill={"teacher_run": str(teacher_run), "alpha": alpha, "temperature": 2.0})
        said: list[str] = []
        run = run_mod.run_cv(cfg, out=tmp_path / f"student{alpha}", log=lambda m, s=said: s.append(str(m)))
        assert (run / "fold0" / "teacher_logits.npz").is_file()
        assert any("frozen-prefix views: reusing" in s for s in said)  # the teacher run's own 96 px views
        rows = np.arange(len(tiny_pack))
        t_model, t_mcfg = run_mod.load_fold_model(teacher_run / "fold0", tiny_pack.taxonomy)
        s_model, s_mcfg = run_mod.load_fold_model(run / "fold0", tiny_pack.taxonomy)
        t_p = predict(t_model, run_mod.make_dataset(teacher_cfg, tiny_pack, rows, t_mcfg, train=False))
        s_p = predict(s_model, run_mod.make_dataset(cfg, tiny_pack, rows, s_mcfg, train=False))
        kl[alpha] = _kl_to(t_p.probs["disease"], s_p.probs["disease"])
    assert len(list((tmp_path / "runs" / "cache").glob("*.npy"))) == 2  # the teacher's views and the student's
    assert kl[3.0] < 0.8 * kl[0.0], kl


def test_distillation_refuses_what_cached_logits_cannot_serve(tiny_pack: PackData, tmp_path: Path) -> None:
    model = {"name": "dermimitformer_tiny", "overrides": {"pretrained": True}}
    teacher_cfg = tiny_config(tmp_path, tiny_pack.path, model=model, optim={"frozen_stages": 1},
                              augment={"cutmix_p": 0.0}, train={"epochs": 1, "max_steps_per_epoch": 1},
                              cv={"final_fit": False, "only_folds": [0]})
    teacher_run = run_mod.run_cv(teacher_cfg, out=tmp_path / "teacher", log=_quiet)  # fine-tunes stage 1

    def student(**sections: Any) -> Any:
        return tiny_config(tmp_path, tiny_pack.path, model=model, distill={"teacher_run": str(teacher_run)},
                           **{"augment": {"cutmix_p": 0.0}, "optim": {"frozen_stages": 2}, **sections})

    with pytest.raises(ConfigError, match="fine-tuned layers that the student freezes"):
        run_mod._student_kwargs(student(), tiny_pack, teacher_run / "fold0", _quiet)
    kw = run_mod._student_kwargs(student(optim={"frozen_stages": 1}), tiny_pack, teacher_run / "fold0", _quiet)
    assert isinstance(kw["extra_loss"], CachedDistillLoss)
    with pytest.raises(ConfigError, match="scale_jitter"):
        run_mod._student_kwargs(student(augment={"cutmix_p": 0.0, "crop": "scale_jitter"}), tiny_pack,
                                teacher_run / "fold0", _quiet)
    with pytest.raises(ConfigError, match="CutMix"):
        run_mod._student_kwargs(student(augment={"cutmix_p": 0.5}), tiny_pack, teacher_run / "fold0", _quiet)


def test_the_lite2_student_is_seeded_from_the_default_across_the_token_grid_change(tiny_pack: PackData) -> None:
    from training.distill import seed_student

    s_cfg = load_config(REPO / "configs" / "lite2" / "student.yaml")
    t_cfg = load_config(REPO / "configs" / "lite2" / "default.yaml")
    s_mcfg = run_mod.resolve_model_config(s_cfg, tiny_pack.taxonomy).replace(pretrained=False)
    t_mcfg = run_mod.resolve_model_config(t_cfg, tiny_pack.taxonomy).replace(pretrained=False)
    assert (t_mcfg.grid_size, s_mcfg.grid_size) == ((8, 8), (6, 6))
    assert (s_mcfg.depth, s_mcfg.head_depth, s_mcfg.context_fields) == (1, 1, t_mcfg.context_fields)
    assert s_cfg.optim.frozen_stages == t_cfg.optim.frozen_stages and s_cfg.distill.teacher_run
    from engine.models import build_model

    torch.manual_seed(0)
    teacher, student = build_model(t_mcfg), build_model(s_mcfg)
    seed_student(teacher, t_mcfg, student, s_mcfg)
    t_pos, s_pos = teacher.backbone.pos_embed, student.backbone.pos_embed
    assert (t_pos.shape[1], s_pos.shape[1]) == (65, 37)
    assert torch.equal(s_pos[:, 0], t_pos[:, 0])  # the class token's row is kept, the grid resampled
    assert torch.equal(student.heads["disease"].blocks[0].attn.qkv.weight,
                       teacher.heads["disease"].blocks[0].attn.qkv.weight)
    with torch.no_grad():
        assert student.eval()(torch.zeros(1, 3, 192, 192))["disease_fused"].shape == (1, 6)
