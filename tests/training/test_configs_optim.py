"""Shipped experiment configs resolve; schedules follow SGDR with cycle multiplication; student blocks copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainhelp import REPO

from engine.models import create_model, model_config
from engine.taxonomy import load_taxonomy
from training.config import ConfigError, OptimConfig, load_config
from training.distill import default_keep_blocks, make_student, seed_student
from training.optim import build_optimizer, build_scheduler
from training.run import resolve_model_config

CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "data" not in p.parts)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_shipped_config_resolves(path: Path) -> None:
    cfg = load_config(path)
    mcfg = resolve_model_config(cfg, load_taxonomy("pad_ufes_20"))
    if "body_part" in mcfg.context_fields:  # the sites come from the taxonomy, in its order
        assert len(mcfg.context_sites) == len(load_taxonomy("pad_ufes_20").head("body_part"))
    for member in cfg.ensemble:
        load_config(path.parent / member)


def test_paper_config_matches_the_paper() -> None:
    cfg = load_config(REPO / "configs" / "paper_dermimitformer.yaml")
    mc = model_config(cfg.model.name)
    assert (mc.img_size, mc.top_k, cfg.train.epochs) == (384, 24, 100)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.003, 0.95, 1e-5)
    assert (cfg.augment.cutmix_p, cfg.augment.cutmix_alpha) == (0.5, 0.3)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lrr: 0.1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(bad)


def test_sgdr_with_cycle_multiplication_and_discriminative_lr() -> None:
    model = create_model("dermimitformer_tiny")
    cfg = OptimConfig(name="sgd", lr=0.1, backbone_lr_mult=0.1, schedule="sgdr", sgdr_t0_epochs=1,
                      sgdr_t_mult=2, min_lr_ratio=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=4, epochs=7)
    heads = next(g for g in opt.param_groups if g["name"] == "heads")
    backbone = next(g for g in opt.param_groups if g["name"] == "backbone")
    lrs = []
    for _ in range(28):
        lrs.append((heads["lr"], backbone["lr"]))
        opt.step()
        sched.step()
    assert all(abs(b - 0.1 * h) < 1e-12 for h, b in lrs)
    restarts = [i for i in range(1, 28) if lrs[i][0] > lrs[i - 1][0]]
    assert restarts == [4, 12]  # cycles of 4, 8, 16 steps


def test_student_keeps_chosen_blocks_with_copied_weights() -> None:
    assert default_keep_blocks(12) == [0, 2, 4, 7, 9, 11]
    torch.manual_seed(0)
    cfg = model_config("dermimitformer_tiny", depth=3)
    from engine.models import build_model

    teacher = build_model(cfg)
    student, scfg = make_student(teacher, cfg, [0, 2])
    assert scfg.depth == 2 and len(student.backbone.blocks) == 2
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(s["backbone.blocks.1.attn.qkv.weight"], t["backbone.blocks.2.attn.qkv.weight"])
    assert torch.equal(s["head_fused.fc.weight"], t["head_fused.fc.weight"])


def test_seeded_student_is_shallower_and_smaller_with_teacher_weights() -> None:
    from engine.models import build_model

    torch.manual_seed(0)
    tcfg = model_config("dermimitformer_tiny", depth=2, head_depth=2)  # 96 px: a 6x6 token grid
    teacher = build_model(tcfg).eval()
    scfg = model_config("dermimitformer_tiny", depth=1, head_depth=1, img_size=64)  # 4x4
    student = build_model(scfg).eval()
    maps = seed_student(teacher, tcfg, student, scfg, keep_head_blocks=[1])
    assert maps["backbone.blocks"] == [0] and maps["heads.disease.blocks"] == [1]
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(s["backbone.blocks.0.mlp.fc1.weight"], t["backbone.blocks.0.mlp.fc1.weight"])
    assert torch.equal(s["heads.attributes.blocks.0.attn.qkv.weight"], t["heads.attributes.blocks.1.attn.qkv.weight"])
    assert torch.equal(s["cim.d_from_b.q.weight"], t["cim.d_from_b.q.weight"])
    assert s["backbone.pos_embed"].shape == (1, 17, t["backbone.pos_embed"].shape[-1])
    assert torch.equal(s["backbone.pos_embed"][:, 0], t["backbone.pos_embed"][:, 0])  # class token's slot kept

    # seeding a student of the teacher's own shape reproduces the teacher exactly
    twin = build_model(tcfg).eval()
    seed_student(teacher, tcfg, twin, tcfg, keep_blocks=[0, 1], keep_head_blocks=[0, 1])
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(twin(x)["disease_fused"], teacher(x)["disease_fused"])
    with pytest.raises(ValueError, match="keep_blocks"):
        seed_student(teacher, tcfg, student, scfg, keep_blocks=[5])
