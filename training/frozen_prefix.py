"""Train with the first CNN stages frozen, at the cost of the stages that learn: cached augmented views.

With ``optim.frozen_stages = S`` the stem (conv_stem, bn1) and EfficientNet stages ``0..S-1`` are frozen
(their BatchNorms in eval mode), so they are a fixed function of the augmented photo. Epoch ``e`` of the
Trainer draws photo ``i``'s augmentation from ``rng([seed, e, i])``; this module computes that exact
augmented photo for every epoch, runs the frozen prefix on it once, and keeps the result
(``(epochs, N, C, h, w)`` fp16). Training then runs only the layers after the prefix on the cached
tensors: the same optimisation as online augmentation with those stages frozen, for a fraction of the
compute (on 2 CPU cores the early, high-resolution stages are most of a Lite2's cost). With
``optim.frozen_views = V`` < epochs only the first V epochs' views are cached and epoch e reuses view
``e % V`` (the clinical-context dropping stays online, drawn per epoch). The cache depends
only on the pretrained prefix, the augmentation and the seed, so the CV folds of a run, and other runs
with the same prefix (the model and its CNN floor), share it (``runs/cache/<key>.npy``).

Evaluation never uses the cache: the prefix is put back and the whole model runs on pixels, as the app does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.augment import TrainTransform
from training.config import ExperimentConfig
from training.data.dataset import PackDataset
from training.data.pack import PackData

__all__ = ["CachedViewDataset", "frozen_prefix", "prefix_restored", "prefix_slots", "view_cache", "view_cache_key"]


def prefix_slots(model: nn.Module, stages: int) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every module of the frozen prefix, in forward order."""
    backbone = getattr(model, "backbone", None)
    stem = getattr(backbone, "stem", None)
    if isinstance(stem, nn.Sequential):  # hybrid: stem = conv_stem, bn1, stage 0, stage 1, ...
        return [(stem, str(i)) for i in range(2 + stages)]
    trunk = getattr(model, "trunk", None)
    if trunk is not None and hasattr(trunk, "conv_stem"):  # plain timm EfficientNet classifier
        return [(trunk, "conv_stem"), (trunk, "bn1")] + [(trunk.blocks, str(i)) for i in range(stages)]
    raise ValueError(f"{type(model).__name__} has no EfficientNet stem to freeze")


@contextmanager
def frozen_prefix(model: nn.Module, stages: int) -> Iterator[nn.Sequential]:
    """Swap the prefix out for identities (the model now takes cached features); put it back on exit."""
    slots = prefix_slots(model, stages)
    prefix = [getattr(parent, name) for parent, name in slots]
    for parent, name in slots:
        setattr(parent, name, nn.Identity())
    try:
        yield nn.Sequential(*prefix).eval().requires_grad_(False)
    finally:
        for (parent, name), mod in zip(slots, prefix, strict=True):
            setattr(parent, name, mod)


@contextmanager
def prefix_restored(model: nn.Module, stages: int, prefix: nn.Sequential) -> Iterator[None]:
    """Inside :func:`frozen_prefix`: the whole model again for a moment (validation on pixels)."""
    slots = prefix_slots(model, stages)
    for (parent, name), mod in zip(slots, prefix, strict=True):
        setattr(parent, name, mod)
    try:
        yield
    finally:
        for parent, name in slots:
            setattr(parent, name, nn.Identity())


def view_cache_key(cfg: ExperimentConfig, data: PackData, stem: str, img_size: int) -> str:
    """The file stem of :func:`view_cache`'s cache (other per-view caches are kept beside it under it)."""
    epochs = cfg.optim.frozen_views or cfg.train.epochs
    return f"{stem}-{_key(cfg, data, stem, img_size, cfg.optim.frozen_stages, epochs)}"


def _key(cfg: ExperimentConfig, data: PackData, stem: str, img_size: int, stages: int, epochs: int) -> str:
    blob = json.dumps({"stem": stem, "size": img_size, "stages": stages, "epochs": epochs, "seed": cfg.train.seed,
                       "augment": {k: v for k, v in vars(cfg.augment).items() if not k.startswith("context")},
                       "mean": cfg.data.mean, "std": cfg.data.std, "pack": str(data.path), "n": len(data)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def view_cache(cfg: ExperimentConfig, data: PackData, prefix: nn.Module, *, stem: str, img_size: int,
               cache_dir: Path, log: Any = print) -> np.ndarray:
    """``(epochs, N, C, h, w)`` fp16 features of every epoch's augmented view of every pack row."""
    epochs = cfg.optim.frozen_views or cfg.train.epochs
    path = cache_dir / f"{view_cache_key(cfg, data, stem, img_size)}.npy"
    if path.is_file():
        log(f"frozen-prefix views: reusing {path}")
        return np.load(path, mmap_mode="r")
    tf = TrainTransform(cfg.augment, img_size, cfg.data.mean, cfg.data.std)
    ds = PackDataset(data, np.arange(len(data)), [], img_size=img_size, mean=cfg.data.mean, std=cfg.data.std)
    out: np.ndarray | None = None
    bs = 32
    from tqdm import tqdm

    bar = tqdm(total=epochs * len(data), desc="frozen-prefix views", disable=not cfg.train.progress, unit="img")
    for e in range(epochs):
        for start in range(0, len(data), bs):
            rows = range(start, min(start + bs, len(data)))
            x = torch.stack([tf(ds.image(i), np.random.default_rng([cfg.train.seed, e, i])) for i in rows])
            f = prefix(x).to(torch.float16).numpy()
            if out is None:
                out = np.zeros((epochs, len(data), *f.shape[1:]), dtype=np.float16)
            out[e, start : start + len(f)] = f
            bar.update(len(f))
        log(f"frozen-prefix views: epoch {e + 1}/{epochs} cached")
    bar.close()
    assert out is not None
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


class CachedViewDataset(PackDataset):
    """A training ``PackDataset`` whose pixels are the cached prefix features of the current epoch's view."""

    def __init__(self, base: PackDataset, views: np.ndarray, lesions: np.ndarray | None = None) -> None:
        self.__dict__.update(base.__dict__)
        self.views = views
        if lesions is not None and (lesions.shape[0] != views.shape[0] or lesions.shape[1] != views.shape[1]):
            raise ValueError(f"lesion grids {lesions.shape[:2]} do not match the views {views.shape[:2]}")
        self.lesions = lesions  # (views, N, rows, cols) of training.lsm_mask_loss.lesion_view_grids, or None

    def pixels(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.views[self.epoch % len(self.views), i], dtype=np.float32))

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = super().__getitem__(k)
        if self.lesions is not None:  # the lesion of the same view, on the token grid (NaN: no mask)
            item["lesion"] = torch.from_numpy(
                np.asarray(self.lesions[self.epoch % len(self.lesions), item["index"]], dtype=np.float32))
        return item
