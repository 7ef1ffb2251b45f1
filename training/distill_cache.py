"""Distillation with a frozen prefix (issue 11): the teacher's logits on the student's views, computed once.

With ``optim.frozen_stages`` the student trains on cached CNN features (training/frozen_prefix.py), so
:class:`training.distill.DistillLoss`, which runs the teacher on the batch's pixels, has no pixels to give
it. Instead, before the fold trains, :func:`teacher_targets` runs the teacher once on every view the
student will see:

- epoch ``e`` of pack row ``i`` shows the student the augmentation drawn from ``rng([seed, e % V, i])``
  (V = ``optim.frozen_views``). :class:`~training.augment.TrainTransform` draws its rotation, crop box
  (in the packed photo's coordinates), flips, colour jitter and corruption independently of its output
  size, so the same generator at the teacher's input size gives the same view at the teacher's
  resolution (``augment.crop: scale_jitter`` is the exception: its crop offsets are drawn in output
  pixels, and it is refused). A teacher trained with a frozen prefix of its own runs from that prefix's
  view cache at its size (the teacher run's own cache when the recipes agree, so usually nothing is
  recomputed); any other teacher runs on the pixels.
- the clinical context is the one the student's training dataset gives row ``i`` in epoch ``e``
  (``PackDataset._context_of``: fields dropped with ``rng([seed, e, i, 31337])``), encoded the teacher's way.

The result is ``(epochs, rows, classes)`` per key ("disease", "disease_fused"), kept in the fold's run
folder (``teacher_logits.npz``); :class:`CachedDistillLoss` looks up the batch's rows and epoch (the
Trainer passes ``index`` and ``epoch``) and applies DistillLoss's soft cross-entropy (alpha, T).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.models import ModelConfig
from training.augment import TrainTransform
from training.config import ConfigError, DistillConfig, ExperimentConfig, config_to_dict
from training.data.dataset import make_dataset
from training.data.pack import PackData
from training.distill import soft_cross_entropy_kd
from training.frozen_prefix import frozen_prefix, prefix_slots, view_cache

__all__ = ["CachedDistillLoss", "TeacherTargets", "check_cached_distill", "check_seeded_prefix", "prefix_state",
           "stem_name", "teacher_targets"]

DEFAULT_KEYS = ("disease", "disease_fused")
Log = Callable[[str], None]


def stem_name(mcfg: ModelConfig) -> str:
    """The name the view caches key a model's CNN by (as ``training.run.fit`` does): ``hybrid_lite2`` -> ``lite2``."""
    return "lite" + mcfg.backbone.rsplit("lite", 1)[-1]


def check_cached_distill(cfg: ExperimentConfig) -> None:
    """What cached teacher logits cannot stand for: refused before any teacher is loaded."""
    if cfg.augment.crop == "scale_jitter":
        raise ConfigError("distill.teacher_run with optim.frozen_stages needs augment.crop rrc or none: scale_jitter "
                          "draws its crop offsets in output pixels, so the teacher at its own input size would not "
                          "see the student's view")
    if cfg.augment.cutmix_p > 0:
        raise ConfigError("distill.teacher_run with optim.frozen_stages cannot use CutMix (augment.cutmix_p): the "
                          "teacher's logits are cached per photo and view, not for the batch's mixtures")
    if cfg.distill.hidden_cosine:
        raise ConfigError("distill.hidden_cosine is not available with optim.frozen_stages: only the teacher's "
                          "logits are cached")


def prefix_state(model: nn.Module, stages: int) -> dict[str, torch.Tensor]:
    """A copy of the weights (and BatchNorm statistics) of ``model``'s frozen prefix."""
    out: dict[str, torch.Tensor] = {}
    for n, (parent, name) in enumerate(prefix_slots(model, stages)):
        for k, v in getattr(parent, name).state_dict().items():
            out[f"{n}.{k}"] = v.detach().clone()
    return out


def check_seeded_prefix(student: nn.Module, stages: int, pretrained: dict[str, torch.Tensor], teacher_dir: Path,
                        teacher_stages: int) -> None:
    """The student's frozen prefix must still be the pretrained one after seeding from the teacher.

    Its view cache is keyed by the stem's name (the pretrained weights), is shared between folds and
    runs, and is computed once: a prefix copied from a teacher that fine-tuned those layers (trained with
    fewer frozen stages than the student freezes) would be trained on features of other weights."""
    now = prefix_state(student, stages)
    changed = [k for k, v in pretrained.items() if not torch.equal(now[k], v)]
    if changed:
        raise ConfigError(
            f"the teacher {teacher_dir} fine-tuned layers that the student freezes (teacher optim.frozen_stages = "
            f"{teacher_stages}, student {stages}; e.g. prefix weight {changed[0]!r} differs from the pretrained "
            "one): the student's cached views are of the pretrained prefix, so they cannot serve. Freeze at most "
            f"{teacher_stages} stages in the student, or distil from a teacher that froze at least {stages}",
            teacher_dir)


@dataclass
class TeacherTargets:
    """The teacher's logits for every epoch and training row: ``logits[key]`` is ``(epochs, len(rows), C)``."""

    rows: np.ndarray  # pack rows, in the order of the second axis
    logits: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        size = int(self.rows.max()) + 1 if len(self.rows) else 0
        self._pos = np.full(size, -1, dtype=np.int64)
        self._pos[self.rows] = np.arange(len(self.rows))

    @property
    def epochs(self) -> int:
        return int(next(iter(self.logits.values())).shape[0])

    def lookup(self, key: str, epoch: int, index: np.ndarray) -> np.ndarray:
        """``(B, C)`` logits of pack rows ``index`` in ``epoch``."""
        index = np.asarray(index, dtype=np.int64)
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"teacher logits were cached for {self.epochs} epochs, not epoch {epoch}")
        ok = (index >= 0) & (index < len(self._pos))
        pos = np.full(len(index), -1, dtype=np.int64)
        pos[ok] = self._pos[index[ok]]
        if (pos < 0).any():
            raise IndexError(f"pack rows {index[pos < 0][:5].tolist()} have no cached teacher logits")
        return self.logits[key][epoch, pos]

    def save(self, path: Path, key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        arrays = {"rows": self.rows, "key": np.array(key), **{f"logits_{k}": v for k, v in self.logits.items()}}
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds like allow_pickle
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, key: str) -> TeacherTargets | None:
        """The targets saved at ``path`` if they were made for ``key``, else ``None``."""
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                if str(z["key"]) != key:
                    return None
                logits = {k.removeprefix("logits_"): z[k] for k in z.files if k.startswith("logits_")}
                return cls(z["rows"], logits)
        except (OSError, ValueError, KeyError):
            return None


def _targets_key(teacher_id: str, t_cfg: ExperimentConfig, t_mcfg: ModelConfig, cfg: ExperimentConfig,
                 s_mcfg: ModelConfig, data: PackData, rows: np.ndarray, keys: Sequence[str]) -> str:
    blob = json.dumps({"teacher": teacher_id, "teacher_model": t_mcfg.to_dict(),
                       "teacher_data": [t_cfg.data.mean, t_cfg.data.std], "stages": t_cfg.optim.frozen_stages,
                       "augment": config_to_dict(cfg.augment), "seed": cfg.train.seed, "epochs": cfg.train.epochs,
                       "views": cfg.optim.frozen_views, "student_context": list(s_mcfg.context_fields),
                       "pack": str(data.path), "n": len(data), "keys": list(keys),
                       "rows": hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def teacher_targets(teacher: nn.Module, t_cfg: ExperimentConfig, t_mcfg: ModelConfig, cfg: ExperimentConfig,
                    s_mcfg: ModelConfig, data: PackData, rows: np.ndarray, *, cache_dir: Path,
                    out_path: Path | None = None, teacher_id: str = "", keys: Sequence[str] = DEFAULT_KEYS,
                    batch_size: int = 64, log: Log = print) -> TeacherTargets:
    """The teacher's logits on the student's view and context of every (epoch, row) of a frozen-prefix fit.

    ``t_cfg``/``t_mcfg`` are the teacher run's configs (its input size, normalisation and frozen prefix),
    ``cfg``/``s_mcfg`` the student's (augmentation, seed, epochs, views, context dropping). ``out_path``
    keeps the result (reused when ``teacher_id``, the configs and the rows are the same); ``cache_dir``
    holds the view caches of teachers with a frozen prefix."""
    check_cached_distill(cfg)
    rows = np.asarray(rows, dtype=np.int64)
    key = _targets_key(teacher_id, t_cfg, t_mcfg, cfg, s_mcfg, data, rows, keys)
    if out_path is not None:
        found = TeacherTargets.load(out_path, key)
        if found is not None:
            log(f"teacher logits: reusing {out_path}")
            return found
    epochs = cfg.train.epochs
    views = cfg.optim.frozen_views or epochs
    student_set = make_dataset(cfg, data, rows, s_mcfg, train=True)  # the contexts the student is given
    t_enc = t_mcfg.context_encoding()
    teacher = teacher.eval()
    t_size, t_stages = t_mcfg.img_size, t_cfg.optim.frozen_stages

    def contexts(epoch: int, batch_rows: np.ndarray) -> torch.Tensor | None:
        if t_enc is None:
            return None
        if student_set.context is None:  # a photo-only student: the teacher sees no context either
            return torch.zeros(len(batch_rows), t_enc.dim)
        student_set.set_epoch(epoch)
        return torch.from_numpy(t_enc.encode_many([student_set._context_of(int(i)) for i in batch_rows]))

    out: dict[str, np.ndarray] = {}

    def run(x: torch.Tensor, v: int, start: int, batch_rows: np.ndarray) -> None:
        for e in range(v, epochs, views):  # every epoch that shows view v, each with its own context
            c = contexts(e, batch_rows)
            res = teacher(x) if c is None else teacher(x, c)
            for k in keys:
                if k not in res:
                    continue
                z = res[k].float().numpy()
                if k not in out:
                    out[k] = np.zeros((epochs, len(rows), z.shape[1]), dtype=np.float32)
                out[k][e, start : start + len(z)] = z

    if t_stages:  # the teacher's frozen prefix, cached at its size for the student's views
        vcfg = copy.deepcopy(cfg)
        vcfg.data.mean, vcfg.data.std = t_cfg.data.mean, t_cfg.data.std
        vcfg.optim.frozen_stages = t_stages
        with frozen_prefix(teacher, t_stages) as prefix:
            feats = view_cache(vcfg, data, prefix, stem=stem_name(t_mcfg), img_size=t_size, cache_dir=cache_dir,
                               log=log)
            for v in range(min(views, epochs)):
                for start in range(0, len(rows), batch_size):
                    br = rows[start : start + batch_size]
                    run(torch.from_numpy(np.asarray(feats[v, br], dtype=np.float32)), v, start, br)
    else:  # the whole teacher on the pixels of the student's views at the teacher's size
        tf = TrainTransform(cfg.augment, t_size, t_cfg.data.mean, t_cfg.data.std)
        for v in range(min(views, epochs)):
            for start in range(0, len(rows), batch_size):
                br = rows[start : start + batch_size]
                x = torch.stack([tf(student_set.image(int(i)), np.random.default_rng([cfg.train.seed, v, int(i)]))
                                 for i in br])
                run(x, v, start, br)
            log(f"teacher logits: view {v + 1}/{views} on pixels")
    if not out:
        raise ConfigError(f"the teacher gives none of the distilled outputs {list(keys)}")
    targets = TeacherTargets(rows, out)
    if out_path is not None:
        targets.save(out_path, key)
    log(f"teacher logits: {epochs} epochs x {len(rows)} rows ({', '.join(out)})")
    return targets


class CachedDistillLoss:
    """``alpha`` x soft CE at temperature ``T`` (+ logit MSE) to the cached teacher logits of the batch's rows.

    The extra-loss context must hold ``index`` (the batch's pack rows) and ``epoch`` (the Trainer's)."""

    def __init__(self, targets: TeacherTargets, cfg: DistillConfig, keys: Sequence[str] = DEFAULT_KEYS) -> None:
        if cfg.hidden_cosine:
            raise ConfigError("distill.hidden_cosine is not available with cached teacher logits")
        self.targets, self.cfg = targets, cfg
        self.keys = tuple(k for k in keys if k in targets.logits)

    def __call__(self, model: nn.Module, out: dict[str, torch.Tensor], ctx: dict[str, Any]) -> torch.Tensor:
        index = ctx["index"].detach().cpu().numpy()
        epoch = int(ctx["epoch"])
        c = self.cfg
        keys = [k for k in self.keys if k in out]
        if keys and keys[-1] == "disease_fused" and out["disease_fused"] is out.get("disease"):
            keys = keys[:-1]
        loss = torch.zeros((), device=next(iter(out.values())).device)
        for k in keys:
            t = torch.from_numpy(self.targets.lookup(k, epoch, index)).to(out[k].device)
            loss = loss + c.alpha * soft_cross_entropy_kd(out[k], t, c.temperature)
            if c.logit_mse:
                loss = loss + c.logit_mse * F.mse_loss(out[k].float(), t)
        return loss
