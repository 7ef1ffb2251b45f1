"""Distillation runs: a SkinDistilViT student, the FCViT per-layer family, or cascading distillation.

Each run trains on a patient-grouped split of the pack and scores on the held-out patients, writing
``distill_table.md`` (SkinDistilViT Tables 2-3 form: BMA, parameters, CPU latency per depth), a JSON
copy, and a bundle per distilled model.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models import ModelConfig
from training.config import ExperimentConfig
from training.data.dataset import collate
from training.data.pack import PackData
from training.data.splits import grouped_holdout
from training.distill import (
    DepthRow,
    DistillLoss,
    FCViT,
    FCViTLoss,
    bma_of,
    count_params,
    default_keep_blocks,
    depth_table_markdown,
    make_student,
    measure_latency,
)
from training.evaluate import predict
from training.run import build_model_from_config, ensure_pack, export_model, fit, make_dataset, make_run_dir

__all__ = ["DISTILL_MODES", "load_teacher", "run_distill"]

DISTILL_MODES = ("student", "cascade", "fcvit")


def load_teacher(cfg: ExperimentConfig, data: PackData, teacher: str | Path | None) -> tuple[nn.Module, ModelConfig]:
    if teacher is not None and Path(teacher).suffix == ".dmvb":
        from engine.bundle import load_bundle

        b = load_bundle(teacher)
        return b.build_model(), b.model_config
    if teacher is not None:
        cfg = copy.deepcopy(cfg)
        cfg.model.init_from = str(teacher)
    return build_model_from_config(cfg, data.taxonomy)


def _row(name: str, model: nn.Module, mcfg: ModelConfig, cfg: ExperimentConfig, data: PackData,
         test: np.ndarray) -> DepthRow:
    preds = predict(model, make_dataset(cfg, data, test, mcfg, train=False), batch_size=cfg.data.eval_batch_size)
    keep = ~data.eval_exclude[preds.indices]
    y = data.labels["disease"][preds.indices][keep]
    bma, acc = bma_of(y, preds.probs["disease_fused"][keep], data.taxonomy.head("disease").codes)
    lat = measure_latency(model, mcfg.img_size, repeats=cfg.distill.latency_batches)
    return DepthRow(name, mcfg.depth, bma, acc, count_params(model), 1000 * lat)


@torch.no_grad()
def _fcvit_rows(wrapper: FCViT, mcfg: ModelConfig, cfg: ExperimentConfig, data: PackData,
                test: np.ndarray) -> list[DepthRow]:
    ds = make_dataset(cfg, data, test, mcfg, train=False)
    wrapper.eval()
    logits, idx = [], []
    for s in range(0, len(ds), cfg.data.eval_batch_size):
        batch = collate([ds[i] for i in range(s, min(len(ds), s + cfg.data.eval_batch_size))])
        logits.append(wrapper(batch["image"])["layer_logits"].float().softmax(-1))
        idx.append(batch["index"].numpy())
    probs = torch.cat(logits, dim=1).numpy()
    rows_idx = np.concatenate(idx)
    keep = ~data.eval_exclude[rows_idx]
    y = data.labels["disease"][rows_idx][keep]
    backbone = wrapper.model.backbone  # type: ignore[union-attr]
    rows = []
    for layer in range(probs.shape[0]):
        bma, acc = bma_of(y, probs[layer][keep], data.taxonomy.head("disease").codes)
        blocks = backbone.blocks[: layer + 1]
        params = (sum(p.numel() for n, p in backbone.named_parameters() if not n.startswith("blocks."))
                  + sum(p.numel() for p in blocks.parameters())
                  + sum(p.numel() for p in wrapper.layer_heads[layer].parameters()))
        lat = measure_latency(_Prefix(backbone, layer + 1, wrapper.layer_heads[layer]), mcfg.img_size,
                              repeats=cfg.distill.latency_batches)
        rows.append(DepthRow(f"FCViT L{layer + 1}", layer + 1, bma, acc, params, 1000 * lat))
    return rows


class _Prefix(nn.Module):
    """Backbone embedding + first ``n`` blocks + one layer classifier: an FCViT exit as a standalone model."""

    def __init__(self, backbone: nn.Module, n: int, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.n, self.head = backbone, n, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.backbone.embed(x)  # type: ignore[operator]
        for blk in self.backbone.blocks[: self.n]:  # type: ignore[index]
            t, _ = blk(t)
        return self.head(t[:, 0])


def run_distill(cfg: ExperimentConfig, mode: str, *, teacher: str | Path | None = None,
                out: str | Path | None = None, root: str | Path | None = None, log: Any = print) -> Path:
    if mode not in DISTILL_MODES:
        raise ValueError(f"mode must be one of {DISTILL_MODES}, got {mode!r}")
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out, f"-{mode}")
    idx = np.arange(len(data) if cfg.data.limit is None else min(cfg.data.limit, len(data)))
    frac = cfg.train.val_fraction or 0.2
    tr, te = grouped_holdout(data.labels["disease"], data.groups, idx, frac, cfg.train.seed)
    (run_dir / "split.json").write_text(json.dumps({"train": [data.ids[i] for i in tr],
                                                    "test": [data.ids[i] for i in te]}), encoding="utf-8")
    t_model, t_cfg = load_teacher(cfg, data, teacher)
    t_row = _row("teacher", t_model, t_cfg, cfg, data, te)
    rows: list[DepthRow] = [t_row]
    if mode == "student":
        keep = cfg.distill.keep_blocks or default_keep_blocks(t_cfg.depth)
        log(f"student keeps backbone blocks {keep} of {t_cfg.depth}")
        student, s_cfg = make_student(t_model, t_cfg, keep)
        fo = fit(cfg, data, tr, run_dir / "student", model=student, mcfg=s_cfg,
                 extra_loss=DistillLoss(t_model, cfg.distill))
        rows.append(_row(f"student {keep}", fo.model, s_cfg, cfg, data, te))
        export_model(fo.model, s_cfg, cfg, data.taxonomy, run_dir / "student",
                     provenance={"distilled_from": str(teacher), "keep_blocks": keep}, log=log)
    elif mode == "cascade":
        cur, cur_cfg = t_model, t_cfg
        for depth in range(t_cfg.depth - 1, cfg.distill.min_depth - 1, -1):
            log(f"cascade: distilling {depth + 1} -> {depth} blocks")
            student, s_cfg = make_student(cur, cur_cfg, list(range(depth)))
            fo = fit(cfg, data, tr, run_dir / f"depth{depth}", model=student, mcfg=s_cfg,
                     extra_loss=DistillLoss(copy.deepcopy(cur), cfg.distill))
            rows.append(_row(f"cascade {depth}", fo.model, s_cfg, cfg, data, te))
            export_model(fo.model, s_cfg, cfg, data.taxonomy, run_dir / f"depth{depth}",
                         provenance={"cascade_teacher_depth": depth + 1}, log=log)
            cur, cur_cfg = fo.model, s_cfg
    else:
        wrapper = FCViT(copy.deepcopy(t_model), len(data.taxonomy.head("disease")))
        fo = fit(cfg, data, tr, run_dir / "fcvit", model=wrapper, mcfg=t_cfg, extra_loss=FCViTLoss())
        rows.extend(_fcvit_rows(wrapper, t_cfg, cfg, data, te))
    table = depth_table_markdown(rows, teacher=t_row)
    (run_dir / "distill_table.md").write_text(table, encoding="utf-8")
    (run_dir / "distill.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1), encoding="utf-8")
    log("\n" + table)
    return run_dir
