"""Optimisers, schedules, discriminative learning rates, two-phase fine-tuning and the LR range test.

- SGD with DermImitFormer's settings (§3 Implementation Details: lr 0.003, momentum 0.95, wd 1e-5)
  and AdamW.
- Per-step schedules: linear warmup, then cosine to ``min_lr_ratio * lr``, or SGD with warm restarts
  with cycle-length multiplication (the robustness paper's SGD-R + CLM, Loshchilov & Hutter; the
  cycle arithmetic of torch's ``CosineAnnealingWarmRestarts`` with ``T_mult``, written as a
  ``LambdaLR`` factor so warmup and the discriminative per-group LRs compose), or constant.
- Discriminative LRs: the backbone group (``model.param_groups()``) runs at ``lr * backbone_lr_mult``.
- Two-phase fine-tune (robustness paper §2.2): heads only for ``freeze_backbone_epochs``, then all.
- :func:`lr_find`: Smith's range test (robustness paper Fig. 1-2), exponential sweep, smoothed loss,
  plot saved; the suggestion is the steepest descent of the smoothed curve before divergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from training.config import OptimConfig

__all__ = [
    "LRFindResult",
    "apply_freeze",
    "build_optimizer",
    "build_scheduler",
    "frozen_batchnorms",
    "lr_find",
    "set_backbone_trainable",
    "sgdr_position",
]


def _groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    fn = getattr(model, "param_groups", None)
    if callable(fn):
        return fn()
    return {"backbone": [], "heads": list(model.parameters())}


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Two param groups (backbone at ``lr * backbone_lr_mult``, heads at ``lr``); no decay on 1-D params."""
    groups = _groups(model)
    param_groups: list[dict[str, Any]] = []
    for name, params in (("backbone", groups["backbone"]), ("heads", groups["heads"])):
        lr = cfg.lr * (cfg.backbone_lr_mult if name == "backbone" else 1.0)
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        for ps, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": name})
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False)
    if cfg.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=cfg.betas)
    raise ValueError(f"optim.name must be sgd or adamw, got {cfg.name!r}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int) -> LRScheduler:
    """A per-step scheduler (call ``step()`` after every optimiser step)."""
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    total = max(1, epochs * steps_per_epoch)
    floor = cfg.min_lr_ratio
    t0 = max(1, round(cfg.sgdr_t0_epochs * steps_per_epoch))
    mult = cfg.sgdr_t_mult

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "sgdr":
            t_cur, t_i = sgdr_position(step - warm, t0, mult)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t_cur / t_i))
        if cfg.schedule != "cosine":
            raise ValueError(f"optim.schedule must be cosine, sgdr or constant, got {cfg.schedule!r}")
        t = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return LambdaLR(opt, factor)


def sgdr_position(step: int, t0: int, mult: int) -> tuple[int, int]:
    """(steps into the current cycle, cycle length): torch ``CosineAnnealingWarmRestarts``' T_cur / T_i."""
    if mult == 1:
        return step % t0, t0
    n = int(math.log(step / t0 * (mult - 1) + 1, mult))
    start = t0 * (mult**n - 1) // (mult - 1)
    if step < start:  # float rounding at a cycle boundary
        n -= 1
        start = t0 * (mult**n - 1) // (mult - 1)
    elif step >= start + t0 * mult**n:
        start += t0 * mult**n
        n += 1
    return step - start, t0 * mult**n


def set_backbone_trainable(model: nn.Module, trainable: bool, frozen: Iterable[str] = ()) -> None:
    """Phase 1 of the two-phase fine-tune freezes the backbone; ``frozen`` prefixes stay frozen always."""
    for p in _groups(model)["backbone"]:
        p.requires_grad_(trainable)
    apply_freeze(model, frozen)


def apply_freeze(model: nn.Module, prefixes: Iterable[str]) -> None:
    """Freeze parameters by name prefix (e.g. early stem stages ``backbone.stem.0``) and their BatchNorms."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)


def frozen_batchnorms(model: nn.Module) -> Iterator[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: kept in eval mode so their statistics stay put."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                yield m


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    suggestion: float
    plot: Path | None


def lr_find(
    model: nn.Module,
    batches: Iterable[Any],
    step_loss: Callable[[nn.Module, Any], torch.Tensor],
    cfg: OptimConfig,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 50,
    plot_path: str | Path | None = None,
    diverge: float = 4.0,
) -> LRFindResult:
    """Exponentially increase the LR over ``num_steps`` batches; restore the model's weights afterwards."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(model, cfg)
    ratios = [g["lr"] / cfg.lr for g in opt.param_groups]
    gamma = (end_lr / start_lr) ** (1.0 / max(1, num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smooth, best = 0.0, math.inf
    it = iter(batches)
    model.train()
    for step in range(num_steps):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(batches)
            batch = next(it)
        lr = start_lr * gamma**step
        for g, r in zip(opt.param_groups, ratios, strict=True):
            g["lr"] = lr * r
        opt.zero_grad(set_to_none=True)
        loss = step_loss(model, batch)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        smooth = 0.9 * smooth + 0.1 * value if step else value
        debiased = smooth / (1 - 0.9 ** (step + 1)) if step else value
        lrs.append(lr)
        losses.append(debiased)
        best = min(best, debiased)
        if not math.isfinite(value) or debiased > diverge * best:
            break
    model.load_state_dict(state)
    suggestion = _suggest(lrs, losses)
    plot = _plot(lrs, losses, suggestion, Path(plot_path)) if plot_path else None
    return LRFindResult(lrs, losses, suggestion, plot)


def _suggest(lrs: list[float], losses: list[float]) -> float:
    """LR at the steepest negative slope of loss vs log(lr), ignoring the last points (divergence)."""
    if len(lrs) < 4:
        return lrs[0] if lrs else 1e-3
    end = max(3, int(len(lrs) * 0.9))
    y = np.asarray(losses[:end])
    x = np.log10(np.asarray(lrs[:end]))
    grad = np.gradient(y, x)
    return float(lrs[int(np.argmin(grad))])


def _plot(lrs: list[float], losses: list[float], suggestion: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.set_title("LR range test")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
