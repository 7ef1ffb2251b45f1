"""Distillation after SkinDistilViT (../shared/papers/skindistilvit.md, §3 and §4.2).

- Student (§3 "Student Model"): keep chosen backbone blocks of the teacher (paper: 0, 2, 4, 7, 9, 11 of
  12, i.e. every other block with first and last kept) with copied weights; every other weight is
  copied too. Loss (§4.2): task loss + 0.5 x soft cross-entropy to the teacher at temperature T
  (Hinton et al.), optionally + hidden-state cosine and logit MSE (DistilBERT's extras; the paper found
  no gain, so they default to 0).
- FCViT (§3 "Full distillation"): a classifier on the class token after every backbone block, each
  trained with cross-entropy and combined linearly, giving a usable prediction at every depth.
- Cascading distillation: depth k's student is depth k+1's model stripped of its last block, trained
  against depth k+1 as teacher, down to ``min_depth`` -- the family of Tables 2-3 (BMA, parameters and
  CPU latency per depth).

In DermImitFormer the shared backbone holds ``depth`` blocks and each task head holds ``head_depth``
more; distillation removes *backbone* blocks and keeps the heads (LSM, CIM) whole.

A student CV can run behind its teacher's CV, fold by fold (:func:`wait_for_teacher`): it waits only
while waiting can help (the teacher's fold has not finished yet) and gives up once the teacher run has
written no checkpoint for ``distill.wait_timeout_min`` minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.metrics import classification_report
from engine.models import ModelConfig, build_model
from training.config import ConfigError, DistillConfig

__all__ = [
    "DepthRow",
    "DistillLoss",
    "FCViT",
    "FCViTLoss",
    "TeacherNotReady",
    "bma_of",
    "count_params",
    "default_keep_blocks",
    "depth_table_markdown",
    "make_student",
    "measure_latency",
    "seed_student",
    "soft_cross_entropy_kd",
    "wait_for_teacher",
]

T = TypeVar("T")
_clock = time.monotonic  # the wait's clock (tests advance a fake one)


class TeacherNotReady(ConfigError):
    """The teacher's fold has not finished training yet (no checkpoint, or one of an earlier epoch):
    the one refusal that waiting can cure. Any other :class:`ConfigError` about a teacher is final."""


def _checkpoint_stamp(run_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes whenever the teacher run writes a checkpoint: every fold's ``last.pt`` name, time, size."""
    out = []
    for ckpt in sorted(run_dir.glob("*/last.pt")):
        try:
            st = ckpt.stat()
        except OSError:  # replaced between glob and stat: counts as a change next time
            continue
        out.append((ckpt.parent.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def wait_for_teacher(load: Callable[[], T], fold_dir: Path, *, timeout_s: float, poll_s: float = 30.0,
                     log: Callable[[str], None] = print) -> T:
    """``load()`` once the teacher fold in ``fold_dir`` has finished, polling every ``poll_s`` seconds.

    Only :class:`TeacherNotReady` is waited out; any other :class:`ConfigError` (not a `cv` run, an
    unreadable config or checkpoint, ...) propagates at once, since no amount of waiting fixes it.
    The timeout counts from the teacher run's last new checkpoint, not from the start of the wait, so a
    slow but live teacher is waited for and a crashed or stopped one is given up on.
    """
    run_dir = fold_dir.parent
    stamp, since, said = _checkpoint_stamp(run_dir), _clock(), False
    while True:
        try:
            return load()
        except TeacherNotReady as exc:
            now, latest = _clock(), _checkpoint_stamp(run_dir)
            if latest != stamp:
                stamp, since = latest, now
            idle = now - since
            if idle >= timeout_s:
                raise ConfigError(
                    f"gave up waiting for the teacher's {fold_dir.name}: its run {run_dir} wrote no checkpoint "
                    f"for {idle / 60:.0f} min (distill.wait_timeout_min = {timeout_s / 60:g}); last state: "
                    f"{exc.reason}. Is the teacher run still going?", fold_dir) from exc
            if not said:
                log(f"waiting for the teacher's {fold_dir.name} to finish ({exc.reason}); giving up after "
                    f"{timeout_s / 60:g} min without a new teacher checkpoint")
                said = True
            time.sleep(max(0.0, min(poll_s, timeout_s - idle)))


def default_keep_blocks(n: int) -> list[int]:
    """Half the blocks, evenly spaced, first and last kept: 12 -> [0, 2, 4, 7, 9, 11] as in the paper."""
    if n <= 1:
        return list(range(n))
    k = max(1, (n + 1) // 2)
    return sorted({round(v) for v in np.linspace(0, n - 1, k)})


def _blocks(model: nn.Module) -> nn.ModuleList:
    backbone = getattr(model, "backbone", None)
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError("distillation needs a DermImitFormer-style model with backbone.blocks")
    return blocks


def make_student(teacher: nn.Module, cfg: ModelConfig, keep: Sequence[int]) -> tuple[nn.Module, ModelConfig]:
    """A model with ``len(keep)`` backbone blocks, block i initialised from teacher block ``keep[i]``."""
    n = len(_blocks(teacher))
    keep = list(keep)
    if not keep or any(not 0 <= k < n for k in keep) or sorted(set(keep)) != keep:
        raise ValueError(f"keep must be increasing block indices in [0, {n}), got {keep}")
    scfg = cfg.replace(depth=len(keep), pretrained=False, checkpoint_path=None)
    student = build_model(scfg)
    src = teacher.state_dict()
    prefix = "backbone.blocks."
    state: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        if key.startswith(prefix):
            idx, rest = key[len(prefix):].split(".", 1)
            if int(idx) in keep:
                state[f"{prefix}{keep.index(int(idx))}.{rest}"] = value.clone()
        else:
            state[key] = value.clone()
    student.load_state_dict(state, strict=True)
    return student, scfg


def _pick(keep: Sequence[int] | None, n_teacher: int, n_student: int, what: str) -> list[int]:
    if keep is None:  # every other block; all of them for a student as deep as its teacher (resolution only)
        keep = list(range(n_teacher)) if n_student == n_teacher else default_keep_blocks(n_teacher)[:n_student]
    keep = list(keep)
    if len(keep) != n_student or any(not 0 <= k < n_teacher for k in keep) or sorted(set(keep)) != keep:
        raise ValueError(f"{what}: need {n_student} increasing indices in [0, {n_teacher}), got {keep}")
    return keep


def seed_student(teacher: nn.Module, tcfg: ModelConfig, student: nn.Module, scfg: ModelConfig, *,
                 keep_blocks: Sequence[int] | None = None,
                 keep_head_blocks: Sequence[int] | None = None) -> dict[str, list[int]]:
    """Initialise a shallower and/or lower-resolution ``student`` from ``teacher`` (SkinDistilViT §3).

    Student backbone block i copies teacher block ``keep_blocks[i]``, student head block j copies the
    teacher head's block ``keep_head_blocks[j]`` (defaults: every other block, first kept), the position
    embedding is resampled to the student's token grid, and every other weight of the same shape is
    copied. Returns the block maps used."""
    from timm.layers import resample_abs_pos_embed

    maps = {"backbone.blocks.": _pick(keep_blocks, tcfg.depth, scfg.depth, "keep_blocks")}
    for head in scfg.heads:
        maps[f"heads.{head}.blocks."] = _pick(keep_head_blocks, tcfg.head_depth, scfg.head_depth, "keep_head_blocks")
    src = teacher.state_dict()
    dst = student.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in dst.items():
        t_key = key
        for prefix, keep in maps.items():
            if key.startswith(prefix):
                idx, rest = key[len(prefix):].split(".", 1)
                t_key = f"{prefix}{keep[int(idx)]}.{rest}"
        t_val = src.get(t_key)
        if t_val is None:
            raise ValueError(f"teacher has no weight for student's {key!r}")
        if key.endswith("pos_embed") and t_val.shape != value.shape:
            side = round((value.shape[1] - 1) ** 0.5)
            t_val = resample_abs_pos_embed(t_val.float(), new_size=[side, side], num_prefix_tokens=1)
        if t_val.shape != value.shape:
            raise ValueError(f"{key}: teacher {tuple(t_val.shape)} vs student {tuple(value.shape)}")
        out[key] = t_val.detach().clone().to(value.dtype)
    student.load_state_dict(out, strict=True)
    return {k.rstrip("."): v for k, v in maps.items()}


def soft_cross_entropy_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target cross-entropy, scaled by T^2 so gradients keep their size as T changes."""
    t = F.softmax(teacher.float() / temperature, dim=-1)
    return -(t * F.log_softmax(student.float() / temperature, dim=-1)).sum(-1).mean() * temperature**2


class DistillLoss:
    """Extra loss for :class:`~training.trainer.Trainer`: alpha * soft CE (+ cosine, + MSE) to the teacher."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, keys: Sequence[str] = ("disease", "disease_fused"),
                 teacher_size: int | None = None):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.cfg, self.keys, self.teacher_size = cfg, tuple(keys), teacher_size

    def __call__(self, model: nn.Module, out: dict[str, torch.Tensor], ctx: dict[str, Any]) -> torch.Tensor:
        images = ctx["images"]
        if self.teacher_size is not None and images.shape[-1] != self.teacher_size:
            # a lower-resolution student: the teacher sees the same crop at its own input size
            images = F.interpolate(images, size=(self.teacher_size, self.teacher_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        with torch.no_grad():
            t_out = self.teacher(images)
        c = self.cfg
        loss = torch.zeros((), device=ctx["images"].device)
        keys = [k for k in self.keys if k in out and k in t_out]
        if keys and keys[-1] == "disease_fused" and out["disease_fused"] is out.get("disease"):
            keys = keys[:-1]
        for k in keys:
            loss = loss + c.alpha * soft_cross_entropy_kd(out[k], t_out[k], c.temperature)
            if c.logit_mse:
                loss = loss + c.logit_mse * F.mse_loss(out[k].float(), t_out[k].float())
        if c.hidden_cosine and out["embedding"].shape == t_out["embedding"].shape:
            cos = F.cosine_similarity(out["embedding"].float(), t_out["embedding"].float(), dim=-1)
            loss = loss + c.hidden_cosine * (1 - cos).mean()
        return loss


class FCViT(nn.Module):
    """Wraps a model: a LayerNorm + Linear disease classifier on the class token after every backbone block.

    ``forward`` returns the wrapped model's dict plus ``layer_logits`` (L, B, C). ``param_groups`` puts the
    new classifiers with the heads (discriminative LRs keep working).
    """

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.model = model
        blocks = _blocks(model)
        dim = model.cfg.embed_dim  # type: ignore[union-attr]
        self.layer_heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes)) for _ in range(len(blocks))
        )
        self._captured: list[torch.Tensor] = []
        self._hooks = [b.register_forward_hook(self._hook) for b in blocks]

    def _hook(self, _m: nn.Module, _inp: Any, output: Any) -> None:
        x = output[0] if isinstance(output, tuple) else output
        self._captured.append(x[:, 0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._captured = []
        out = dict(self.model(x))
        out["layer_logits"] = torch.stack([h(c) for h, c in zip(self.layer_heads, self._captured, strict=True)])
        self._captured = []
        return out

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = self.model.param_groups()  # type: ignore[operator]
        return {"backbone": groups["backbone"], "heads": groups["heads"] + list(self.layer_heads.parameters())}


class FCViTLoss:
    """Extra loss: cross-entropy of every layer classifier on the (masked, soft) disease target."""

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        self.weights = weights

    def __call__(self, model: nn.Module, out: dict[str, torch.Tensor], ctx: dict[str, Any]) -> torch.Tensor:
        logits = out["layer_logits"]
        t, m = ctx["targets"]["disease"], ctx["masks"]["disease"].float()
        w = self.weights or [1.0] * logits.shape[0]
        total = torch.zeros((), device=logits.device)
        for wi, z in zip(w, logits, strict=True):
            per = -(t * F.log_softmax(z.float(), dim=-1)).sum(-1)
            total = total + wi * (per * m).sum() / m.sum().clamp_min(1.0)
        return total


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def measure_latency(model: nn.Module, img_size: int, *, batch: int = 1, repeats: int = 5, warmup: int = 2,
                    device: str = "cpu") -> float:
    """Median seconds per image for a forward pass at ``batch`` (SkinDistilViT Table 3 speeds)."""
    model = model.eval().to(device)
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / batch


@dataclass
class DepthRow:
    """One row of the depth table: a model (or an FCViT layer) with its BMA, size and speed."""

    name: str
    depth: int
    bma: float
    accuracy: float
    params: int
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def bma_of(labels: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> tuple[float, float]:
    rep = classification_report(labels, probs, list(names))
    return rep.balanced_accuracy, rep.accuracy


def depth_table_markdown(rows: Sequence[DepthRow], teacher: DepthRow | None = None) -> str:
    """SkinDistilViT Tables 2-3: BMA per depth, parameters and CPU latency, and the trade-off vs the teacher."""
    lines = ["| Model | Blocks | BMA (%) | Acc (%) | Params (M) | CPU ms/img | BMA kept (%) | Size (%) | Speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = size = speed = "-"
        if teacher is not None and teacher.bma > 0:
            kept = f"{100 * r.bma / teacher.bma:.1f}"
            size = f"{100 * r.params / teacher.params:.1f}"
            speed = f"{teacher.latency_ms / max(r.latency_ms, 1e-9):.2f}x"
        lines.append(f"| {r.name} | {r.depth} | {100 * r.bma:.1f} | {100 * r.accuracy:.1f} | {r.params / 1e6:.2f} "
                     f"| {r.latency_ms:.1f} | {kept} | {size} | {speed} |")
    return "\n".join(lines) + "\n"

