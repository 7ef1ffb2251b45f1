"""A torch ``Dataset`` over an HDF5 pack, plus samplers that work the same with and without DDP.

The HDF5 file is opened lazily in each worker (h5py handles must not cross ``fork``). Each item is
``{"image", "index", "targets": {head: (C,) soft}, "masks": {head: () or (C,)}}``; single-label
heads become one-hot soft targets so CutMix and label smoothing treat every head alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from engine.context import ClinicalContext, ContextEncoding
from engine.preprocess import PreprocessConfig, preprocess
from training.augment import TrainTransform
from training.data.context import drop_fields, pack_contexts
from training.data.pack import PackData

if TYPE_CHECKING:
    from engine.models import ModelConfig
    from training.config import ExperimentConfig

__all__ = ["PackDataset", "ShardedSampler", "class_balanced_weights", "collate", "make_dataset"]


class PackDataset(Dataset[dict[str, Any]]):
    """Items ``indices`` of a pack; ``transform=None`` means evaluation preprocessing (engine.preprocess)."""

    def __init__(
        self,
        data: PackData,
        indices: Sequence[int] | np.ndarray,
        heads: Sequence[str],
        *,
        img_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        transform: TrainTransform | None = None,
        seed: int = 0,
        corruption: tuple[str, int] | None = None,
        context: ContextEncoding | None = None,
        context_drop: tuple[float, float] = (0.0, 0.0),
        contexts: Sequence[ClinicalContext | None] | None = None,
    ) -> None:
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.heads = list(heads)
        self.transform = transform
        self.pre = PreprocessConfig(img_size=img_size, mean=mean, std=std, interpolation="area")
        self.seed = seed
        self.epoch = 0
        self.corruption = corruption  # fixed test-time corruption (robustness evaluation)
        # Clinical context (engine.context): training drops fields at random (context_drop = (p, p_all));
        # evaluation gives the photo only unless ``contexts`` (one per pack row) says otherwise.
        self.context = context
        self.context_drop = context_drop
        self._contexts: Sequence[ClinicalContext | None] | None = contexts
        self._h5: h5py.File | None = None
        tax = data.taxonomy
        self._multi = {h: tax.head(h).multi_label for h in self.heads}
        self._ncls = {h: len(tax.head(h)) for h in self.heads}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = None
        return state

    def image(self, i: int) -> np.ndarray:
        """Packed uint8 image of pack row ``i``."""
        if self._h5 is None:
            self._h5 = h5py.File(self.data.path, "r")
        return np.asarray(self._h5["images"][i])

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = int(self.indices[k])
        x = self.pixels(i)
        item: dict[str, Any] = {"image": x, "index": i}
        if self.context is not None:
            item["context"] = torch.from_numpy(self.context.encode(self._context_of(i)))
        targets: dict[str, torch.Tensor] = {}
        masks: dict[str, torch.Tensor] = {}
        for h in self.heads:
            lab, msk = self.data.labels[h][i], self.data.masks[h][i]
            if self._multi[h]:
                targets[h] = torch.as_tensor(lab, dtype=torch.float32)
                masks[h] = torch.as_tensor(msk, dtype=torch.float32)
            else:
                t = torch.zeros(self._ncls[h])
                if msk and lab >= 0:
                    t[int(lab)] = 1.0
                targets[h] = t
                masks[h] = torch.tensor(float(msk and lab >= 0))
        return item | {"targets": targets, "masks": masks}

    def pixels(self, i: int) -> torch.Tensor:
        """The model input of pack row ``i``: this epoch's augmentation, or evaluation preprocessing."""
        rgb = self.image(i)
        if self.corruption is not None:
            from engine.corrupt import corrupt

            name, level = self.corruption
            rgb = corrupt(rgb, name, level=level, seed=self.seed * 1_000_003 + i)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return self.transform(rgb, rng)
        return torch.from_numpy(preprocess(rgb, self.pre))

    def _context_of(self, i: int) -> ClinicalContext | None:
        assert self.context is not None
        if self.transform is None:
            return self._contexts[i] if self._contexts is not None else None
        if self._contexts is None:
            self._contexts = pack_contexts(self.data)
        ctx = self._contexts[i]
        if ctx is None:
            return None
        rng = np.random.default_rng([self.seed, self.epoch, i, 31337])
        return drop_fields(ctx, rng, self.context_drop[0], self.context_drop[1], self.context.fields)


def make_dataset(cfg: ExperimentConfig, data: PackData, idx: np.ndarray, mcfg: ModelConfig, *, train: bool,
                 corruption: tuple[str, int] | None = None,
                 contexts: Sequence[ClinicalContext | None] | None = None) -> PackDataset:
    """The dataset a run trains (``train``: its augmentation) or evaluates on; ``contexts`` (one per pack
    row) feeds an evaluation the clinical context; training draws its own."""
    tf = TrainTransform(cfg.augment, mcfg.img_size, cfg.data.mean, cfg.data.std) if train else None
    return PackDataset(data, idx, mcfg.heads, img_size=mcfg.img_size, mean=cfg.data.mean, std=cfg.data.std,
                       transform=tf, seed=cfg.train.seed, corruption=corruption,
                       context=mcfg.context_encoding(), contexts=contexts,
                       context_drop=(cfg.augment.context_drop_p, cfg.augment.context_drop_all_p))


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    heads = items[0]["targets"].keys()
    extra = {k: torch.stack([it[k] for it in items]) for k in ("context", "lesion") if k in items[0]}
    return extra | {
        "image": torch.stack([it["image"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "targets": {h: torch.stack([it["targets"][h] for it in items]) for h in heads},
        "masks": {h: torch.stack([it["masks"][h] for it in items]) for h in heads},
    }


def class_balanced_weights(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-sample weight 1/count(class) so every diagnosis is drawn equally often on average."""
    labels = np.asarray(labels)
    known = (np.asarray(mask) > 0) & (labels >= 0)
    counts = np.bincount(labels[known], minlength=int(labels.max()) + 1 if labels.size else 1)
    w = np.zeros(len(labels), dtype=np.float64)
    w[known] = 1.0 / np.maximum(counts[labels[known]], 1)
    w[~known] = w[known].mean() if known.any() else 1.0
    return w


class ShardedSampler(Sampler[int]):
    """Seeded per-epoch order (shuffled, or weighted with replacement), split across DDP ranks.

    Like ``DistributedSampler`` (pads to a multiple of the world size), and like
    ``WeightedRandomSampler`` when ``weights`` is given; with ``world_size=1`` it is a plain sampler.
    The order depends only on (seed, epoch), so a resumed run replays it exactly.
    """

    def __init__(
        self,
        n: int,
        *,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.n, self.shuffle, self.weights = n, shuffle, weights
        self.seed, self.rank, self.world = seed, rank, world_size
        self.epoch = 0
        per = n // world_size if drop_last else -(-n // world_size)
        self.num_samples = per
        self.total = per * world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        if self.weights is not None:
            p = self.weights / self.weights.sum()
            order = rng.choice(self.n, size=self.total, replace=True, p=p)
        elif self.shuffle:
            order = rng.permutation(self.n)
        else:
            order = np.arange(self.n)
        if len(order) < self.total:
            order = np.concatenate([order, order[: self.total - len(order)]])
        order = order[: self.total]
        return iter(order[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return self.num_samples
