"""The training loop: progress bars, mixed precision, clipping, exact-resume checkpoints, logs, DDP.

One :class:`Trainer` per model fit. Randomness is made a function of (seed, epoch, step/index):
the sampler order, every augmentation and every CutMix box, so a run resumed from ``last.pt``
repeats the uninterrupted run step for step (model, optimiser, scheduler and RNG states are in the
checkpoint too). Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` and each
rank sees its shard (gloo on CPU, NCCL on CUDA); rank 0 evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from training.augment import cutmix
from training.config import ExperimentConfig
from training.data.dataset import PackDataset, ShardedSampler, collate
from training.distributed import DistInfo, barrier
from training.losses import MultiTaskLoss
from training.optim import apply_freeze, build_optimizer, build_scheduler, frozen_batchnorms, set_backbone_trainable

__all__ = ["TrainResult", "Trainer", "amp_dtype", "resolve_device", "save_atomic", "seed_everything"]

ValFn = Callable[[nn.Module], dict[str, float]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the device has it (CPU with AVX-512 BF16/AMX, Ampere+ GPUs), else fp16 on CUDA."""
    if mode == "none":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if mode != "auto":
        raise ValueError(f"train.amp must be auto, bf16, fp16 or none, got {mode!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() else None


@dataclass
class TrainResult:
    best_metric: float | None
    best_epoch: int
    epochs_run: int
    wall_time_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None


class Trainer:
    """Fits ``model`` on ``train_set``; ``val_fn(model) -> flat metrics`` picks the best checkpoint."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: MultiTaskLoss,
        train_set: PackDataset,
        cfg: ExperimentConfig,
        run_dir: str | Path | None = None,
        *,
        val_fn: ValFn | None = None,
        dist: DistInfo | None = None,
        sample_weights: np.ndarray | None = None,
        extra_loss: Callable[[nn.Module, dict[str, torch.Tensor], dict[str, Any]], torch.Tensor] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dist = dist or DistInfo()
        self.device = resolve_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        self.train_set = train_set
        self.val_fn = val_fn
        self.extra_loss = extra_loss
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.amp = amp_dtype(cfg.train.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        apply_freeze(self.model, cfg.optim.freeze)
        self.sampler = ShardedSampler(
            len(train_set), weights=sample_weights, seed=cfg.train.seed,
            rank=self.dist.rank, world_size=self.dist.world_size,
        )
        self.loader = DataLoader(
            train_set, batch_size=cfg.data.batch_size, sampler=self.sampler, collate_fn=collate,
            num_workers=cfg.data.num_workers, drop_last=len(self.sampler) > cfg.data.batch_size,
            persistent_workers=cfg.data.num_workers > 0,
        )
        self.steps_per_epoch = len(self.loader)
        if cfg.train.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.train.max_steps_per_epoch)
        self.ddp: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            if self.device.type == "cuda" and not cfg.train.freeze_bn_stats:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=cfg.optim.freeze_backbone_epochs > 0
            )
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.train.epochs)
        self.epoch = 0
        self.global_step = 0
        self.best_metric: float | None = None
        self.best_epoch = -1
        self.history: list[dict[str, Any]] = []

    # one optimiser step ---------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def train_step(self, batch: dict[str, Any], epoch: int = 0, step: int = 0) -> dict[str, float]:
        """Forward, Eq. 7 loss, backward, clip, step. Returns the loss terms as floats."""
        cfg = self.cfg
        images = batch["image"].to(self.device, non_blocking=True)
        targets = {k: v.to(self.device) for k, v in batch["targets"].items()}
        masks = {k: v.to(self.device) for k, v in batch["masks"].items()}
        gen = torch.Generator().manual_seed(_mix_seed(cfg.train.seed, epoch, step, self.dist.rank))
        mixed = cutmix(images, targets, masks, p=cfg.augment.cutmix_p, alpha=cfg.augment.cutmix_alpha,
                       generator=gen)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            ctx = batch.get("context")
            out = self.ddp(mixed.images) if ctx is None else self.ddp(mixed.images, ctx.to(self.device))
            loss = self.loss_fn(out, mixed.targets, mixed.masks)
            total = loss.total
            if self.extra_loss is not None:
                extra = {"images": mixed.images, "targets": mixed.targets, "masks": mixed.masks}
                if "lesion" in batch:  # the lesion grids of the views (training.lsm_mask_loss)
                    extra["lesion"] = batch["lesion"].to(self.device)
                if ctx is not None:
                    extra["context"] = ctx.to(self.device)
                if "index" in batch:  # pack rows and epoch: cached per-view targets (training.distill_cache)
                    extra["index"] = batch["index"]
                extra["epoch"] = epoch
                total = total + self.extra_loss(self.model, out, extra)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            total.backward()
        if cfg.train.grad_clip:
            params = [p for p in self.model.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        res = {"loss": float(total.detach())}
        res.update({f"loss_{k}": float(v.detach()) for k, v in loss.terms.items()})
        return res

    # epochs ------------------------------------------------------------------------------------
    def _set_phase(self, epoch: int) -> None:
        o = self.cfg.optim
        if o.freeze_backbone_epochs > 0:
            set_backbone_trainable(self.model, epoch >= o.freeze_backbone_epochs, o.freeze)

    def train_mode(self) -> None:
        self.model.train()
        for bn in frozen_batchnorms(self.model):
            bn.eval()
        if self.cfg.train.freeze_bn_stats:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        for i, batch in enumerate(self.loader):
            if i >= self.steps_per_epoch:
                break
            yield batch

    def fit(self, resume: str | Path | None = None, stop_after_epoch: int | None = None) -> TrainResult:
        """Train to ``cfg.train.epochs`` (or stop after ``stop_after_epoch`` epochs, for tests/pauses)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        if resume is not None:
            self.load_checkpoint(resume)
        else:
            seed_everything(cfg.train.seed)
        main = self.dist.is_main
        last_ckpt = best_ckpt = None
        if self.run_dir is not None and main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        end = cfg.train.epochs if stop_after_epoch is None else min(cfg.train.epochs, stop_after_epoch)
        for epoch in range(self.epoch, end):
            self._set_phase(epoch)
            self.train_mode()
            sums: dict[str, float] = {}
            n_img, t_ep = 0, time.perf_counter()
            bar = _progress(self._batches(epoch), self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.train.epochs}",
                            enabled=cfg.train.progress and main)
            step = -1
            for step, batch in enumerate(bar):
                res = self.train_step(batch, epoch, step)
                n_img += batch["image"].shape[0]
                for k, v in res.items():
                    sums[k] = sums.get(k, 0.0) + v
                rate = n_img / max(time.perf_counter() - t_ep, 1e-9)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{res['loss']:.3f}", img_s=f"{rate * self.dist.world_size:.1f}")
                if main and cfg.train.log_every and self.global_step % cfg.train.log_every == 0:
                    self._log({"kind": "step", "epoch": epoch, "step": self.global_step,
                               "lr": self.optimizer.param_groups[-1]["lr"], **res})
            steps = max(1, step + 1)
            record: dict[str, Any] = {"kind": "epoch", "epoch": epoch + 1, "step": self.global_step,
                                      **{f"train_{k}": v / steps for k, v in sums.items()},
                                      "lr": self.optimizer.param_groups[-1]["lr"],
                                      "img_per_s": n_img * self.dist.world_size / max(time.perf_counter() - t_ep, 1e-9),
                                      "epoch_time_s": time.perf_counter() - t_ep}
            self.epoch = epoch + 1
            improved = False
            if main and self.val_fn is not None:
                val = self.val_fn(self.model)
                record.update({f"val_{k}": v for k, v in val.items()})
                metric = val.get(cfg.train.select_metric)
                if metric is not None and math.isfinite(metric) and (
                    self.best_metric is None or metric > self.best_metric
                ):
                    self.best_metric, self.best_epoch, improved = metric, self.epoch, True
            elif self.val_fn is None:
                self.best_epoch, improved = self.epoch, True  # no validation: the last epoch is "best"
            self.history.append(record)
            if main:
                self._log(record)
                if self.run_dir is not None:
                    last_ckpt = self.save_checkpoint(self.run_dir / "last.pt")
                    if improved:
                        best_ckpt = save_atomic(_plain({"model": self.model.state_dict(), "epoch": self.epoch,
                                                        "metric": self.best_metric}), self.run_dir / "best.pt")
                    self._write_csv()
                    self.plot_losses()
            barrier(self.dist)
        if self.run_dir is not None and (self.run_dir / "best.pt").is_file():
            best_ckpt = self.run_dir / "best.pt"
        return TrainResult(self.best_metric, self.best_epoch, self.epoch, time.perf_counter() - t0,
                           self.history, last_ckpt, best_ckpt)

    # checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        path = Path(path)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "rng": {
                "python": random.getstate(),
                "numpy": _numpy_rng_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        return save_atomic(_plain(state), path)

    def load_checkpoint(self, path: str | Path) -> None:
        # Resuming reads the run's own last.pt, including ones written before checkpoints held only
        # tensors and plain values (their numpy RNG state is an array), so full unpickling stays here;
        # weights from elsewhere go through training.run.load_weights, which never unpickles.
        state = torch.load(Path(path), map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.best_metric, self.best_epoch = state["best_metric"], int(state["best_epoch"])
        self.history = list(state.get("history", []))
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(_numpy_rng_restore(rng["numpy"]))
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # logs and plots ----------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        with (self.run_dir / "log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _write_csv(self) -> None:
        assert self.run_dir is not None
        keys: list[str] = []
        for r in self.history:
            keys.extend(k for k in r if k not in keys and k != "kind" and ".per_class." not in k)
        with (self.run_dir / "epochs.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.history)

    def plot_losses(self) -> Path | None:
        if self.run_dir is None or not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        ep = [r["epoch"] for r in self.history]
        ax.plot(ep, [r.get("train_loss", np.nan) for r in self.history], marker="o", label="train loss")
        if any("val_loss" in r for r in self.history):
            ax.plot(ep, [r.get("val_loss", np.nan) for r in self.history], marker="o", label="val loss")
        sel = self.cfg.train.select_metric
        if any(f"val_{sel}" in r for r in self.history):
            ax2 = ax.twinx()
            ax2.plot(ep, [r.get(f"val_{sel}", np.nan) for r in self.history], color="tab:green", marker="s",
                     label=f"val {sel}")
            ax2.set_ylabel(sel)
            ax2.legend(loc="upper right")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(loc="upper left")
        ax.set_title(self.cfg.name)
        path = self.run_dir / "loss_curve.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return path


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over it.

    Every checkpoint (``last.pt``, ``best.pt``) is written this way: a crash, a kill or a full disk
    mid-write leaves the previous file whole, and a reader (a student waiting for its teacher) never
    sees half a checkpoint.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays -> Python numbers and tensors, so a checkpoint loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def _numpy_rng_state() -> tuple[str, torch.Tensor, int, int, float]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)


def _numpy_rng_restore(state: Any) -> Any:
    """Both forms: the tensor one :func:`_numpy_rng_state` writes, and numpy's own (older checkpoints)."""
    name, keys, *rest = state
    if isinstance(keys, torch.Tensor):
        keys = keys.cpu().numpy().astype(np.uint32)
    return (name, keys, *rest)


def _mix_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, epoch, step, rank, 104729]).integers(2**62))


def _progress(it: Iterator[dict[str, Any]], total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False)
