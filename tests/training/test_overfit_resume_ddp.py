"""Trainer: the tiny model overfits one batch (gradients flow through LSM and CIM); resume replays the
uninterrupted run exactly; a 2-process gloo DDP step equals one single-process step on the whole batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from trainhelp import ddp_setup, ddp_worker, tiny_config

from training.data.dataset import collate
from training.data.pack import PackData
from training.run import build_loss, build_model_from_config, fit, make_dataset
from training.trainer import Trainer


def test_tiny_model_overfits_one_batch(tiny_pack: PackData, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path)
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
    assert mcfg.lsm and mcfg.fusion == "cim"
    rows = np.arange(8)
    ds = make_dataset(cfg, tiny_pack, rows, mcfg, train=False)
    batch = collate([ds[i] for i in range(len(ds))])
    loss_fn = build_loss(cfg, tiny_pack, mcfg.heads, rows)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    first = None
    for step in range(150):
        opt.zero_grad()
        res = loss_fn(model(batch["image"]), batch["targets"], batch["masks"])
        res.total.backward()
        if step == 0:
            first = float(res.total.detach())
            for name in ("cim", "heads.disease.blocks", "heads.attributes.blocks", "backbone.blocks", "head_fused"):
                grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
                assert grads and all(g is not None for g in grads), name
                assert sum(float(g.abs().sum()) for g in grads) > 0, name
        opt.step()
        if float(res.total.detach()) < 0.05:
            break
    assert first is not None and first > 5.0
    assert float(res.total.detach()) < 0.05, {k: float(v) for k, v in res.terms.items()}


def test_resume_matches_uninterrupted_run(tiny_pack: PackData, tmp_path: Path) -> None:
    sections = {"train": {"epochs": 2, "max_steps_per_epoch": 2}, "augment": {"cutmix_p": 0.5},
                "optim": {"name": "sgd", "lr": 0.01, "schedule": "cosine", "warmup_epochs": 0.5}}
    rows = np.arange(len(tiny_pack))

    def trainer(run: Path, init_seed: int = 0) -> Trainer:
        cfg = tiny_config(tmp_path, tiny_pack.path, **sections)
        torch.manual_seed(init_seed)
        model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
        return Trainer(model, build_loss(cfg, tiny_pack, mcfg.heads, rows),
                       make_dataset(cfg, tiny_pack, rows, mcfg, train=True), cfg, run)

    full = trainer(tmp_path / "full")
    full.fit()
    part = trainer(tmp_path / "part")
    part.fit(stop_after_epoch=1)
    assert part.epoch == 1
    resumed = trainer(tmp_path / "resumed", init_seed=123)  # a fresh process: other init, other RNG
    resumed.fit(resume=tmp_path / "part" / "last.pt")
    assert resumed.global_step == full.global_step == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert (tmp_path / "full" / "log.jsonl").is_file() and (tmp_path / "full" / "loss_curve.png").is_file()


@pytest.mark.slow
def test_two_process_gloo_ddp_step_matches_single_process(tiny_pack: PackData, tmp_path: Path) -> None:
    known = np.flatnonzero(tiny_pack.masks["attributes"].min(axis=1) == 1)[:8]
    rows = [int(r) for r in known]
    cfg, data = ddp_setup(str(tiny_pack.path), str(tmp_path))
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, data.taxonomy)
    ds = make_dataset(cfg, data, np.asarray(rows), mcfg, train=False)
    single = Trainer(model, build_loss(cfg, data, mcfg.heads, np.asarray(rows)), ds, cfg, None)
    before = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.train_mode()
    single.train_step(collate([ds[i] for i in range(len(rows))]))
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "init"), str(tiny_pack.path), rows, str(tmp_path)), nprocs=2)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    ref = single.model.state_dict()
    moved = [k for k in ref if not torch.equal(ref[k], before[k])]
    assert len(moved) > 10
    for k in ref:
        torch.testing.assert_close(ddp[k], ref[k], rtol=1e-4, atol=1e-6)


def test_fit_with_validation_restores_best(tiny_pack: PackData, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, train={"epochs": 2, "max_steps_per_epoch": 1})
    rows = np.arange(len(tiny_pack))
    out = fit(cfg, tiny_pack, rows[:14], tmp_path / "run", val_idx=rows[14:])
    assert out.result.best_checkpoint is not None and out.val_predictions is not None
    assert 1 <= out.result.best_epoch <= 2
    assert out.val_predictions.probs["disease_fused"].shape == (len(rows) - 14, 6)
