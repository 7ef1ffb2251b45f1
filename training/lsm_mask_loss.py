"""An auxiliary loss that pulls the Lesion Selection Module's scores toward the lesion (issue 11, item 4).

Wired in by ``loss.lsm_mask_weight`` > 0 with ``data.lesion_masks`` (a masks folder or CSV); whether
a model keeps it is decided by a CV run showing it costs no accuracy (the model card says which).

The LSM (DermImitFormer §2 Eq. 1) ranks patch tokens by the mutual attention ``s_n`` and keeps the
top K; nothing in the classification loss says those tokens must be lesion. On photos that have a
lesion mask, this loss reads the scores as a distribution over cells, ``p_n = s_n / sum_m s_m``, and
penalises the score mass that falls outside the lesion::

    L = -log( sum_n p_n * c_n + eps ),   c_n = lesion share of cell n (in [0, 1])

averaged over the photos of the batch that have a mask (photos without one contribute nothing).
It does not ask the scores to spread evenly over the lesion, only that their mass lies on it, which
is what the hit rate of the top K measures. The gradient reaches the attention maps of the head's
blocks (and, through them, the tokens), so it shapes *where the head attends*, not the classifier.

How the lesion reaches the loss:

1. :func:`pack_lesions` reads each pack row's mask (``engine.masks.MaskSource``) as its coverage of the
   pack's squashed frame; rows without a mask are NaN.
2. :func:`lesion_view_grids` replays, for every cached view of the frozen-prefix training
   (``training.frozen_prefix``), the *same* augmentation the photo got (the mask rides as a 4th channel
   through :meth:`training.augment.TrainTransform.with_lesion`) and reduces the warped mask to the
   model's token grid (:func:`lesion_cells`).
3. ``CachedViewDataset`` gives ``item["lesion"]``; the Trainer passes ``batch["lesion"]`` to
   ``extra_loss``; :class:`LsmMaskLoss` applies the weight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from engine.masks import MaskSource
from engine.metrics.localisation import lesion_coverage

if TYPE_CHECKING:
    from training.config import ExperimentConfig
    from training.data.pack import PackData

__all__ = ["CamMaskLoss", "LsmMaskLoss", "cam_mask_loss", "lesion_cells", "lesion_view_grids", "lsm_mask_loss",
           "pack_lesions"]


def lesion_cells(mask: npt.ArrayLike | None, grid: tuple[int, int]) -> np.ndarray:
    """``(rows, cols)`` float32: the share of each token cell that is lesion; all NaN without a mask.

    The cells are the fractions of the squashed frame the tokens cover (``engine.explain.token_box``),
    so a mask of any resolution maps onto the grid as its photo does (``lesion_coverage``, area average).
    """
    gh, gw = int(grid[0]), int(grid[1])
    if mask is None:
        return np.full((gh, gw), np.nan, dtype=np.float32)
    return np.asarray(lesion_coverage(mask, (gh, gw)), dtype=np.float32)


def lsm_mask_loss(scores: torch.Tensor, lesion: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """The mean over masked photos of ``-log(lesion share of the LSM score mass + eps)``.

    ``scores`` is the LSM's ``(B, N)`` ``s_n`` (non-negative); ``lesion`` is ``(B, N)`` or
    ``(B, rows, cols)`` cell coverage in [0, 1], NaN rows for photos without a mask. Photos whose
    mask has no lesion in the grid are skipped too (no cell to pull toward). Returns a scalar that
    is 0 (still attached to ``scores``) when no photo counts.
    """
    if scores.ndim != 2:
        raise ValueError(f"expected (B, N) LSM scores, got shape {tuple(scores.shape)}")
    target = lesion.reshape(lesion.shape[0], -1).to(device=scores.device, dtype=torch.float32)
    if target.shape != scores.shape:
        raise ValueError(f"lesion grid {tuple(lesion.shape)} does not match the scores {tuple(scores.shape)}")
    s = scores.float().clamp_min(0.0)
    valid = torch.isfinite(target).all(dim=1) & (torch.nan_to_num(target).sum(dim=1) > 0)
    if not bool(valid.any()):
        return s.sum() * 0.0
    s, c = s[valid], target[valid].clamp(0.0, 1.0)
    p = s / s.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return -torch.log((p * c).sum(dim=1) + eps).mean()


class LsmMaskLoss(nn.Module):
    """``extra_loss`` for the Trainer: ``weight * lsm_mask_loss(out["lsm_<head>"], batch["lesion"])``.

    A batch without a ``"lesion"`` entry, or a model without the LSM output, costs nothing (0), so the
    callable can be passed to runs whose data has no masks.
    """

    def __init__(self, weight: float = 0.1, head: str = "disease", eps: float = 1e-4) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.head = head
        self.eps = float(eps)

    def forward(self, model: nn.Module, out: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> torch.Tensor:
        scores = out.get(f"lsm_{self.head}")
        lesion = batch.get("lesion")
        if scores is None or lesion is None or self.weight == 0.0:
            anchor = next(iter(out.values()))
            return anchor.sum() * 0.0
        return self.weight * lsm_mask_loss(scores, torch.as_tensor(lesion), self.eps)


def pack_lesions(data: PackData, masks: MaskSource | str | Path) -> list[np.ndarray | None]:
    """Per pack row, its mask as coverage of the pack's squashed ``(size, size)`` frame, or None.

    Masks are found by the row's id (``engine.masks.mask_key``), read at their own size and squashed as
    the photo was (``engine.preprocess.resize_square``); a mask that is not of its photo's frame raises
    ``engine.masks.MaskError`` naming the file.
    """
    source = masks if isinstance(masks, MaskSource) else MaskSource.open(masks)
    out: list[np.ndarray | None] = []
    for key in data.ids:
        m = source.load(key) if key in source else None
        out.append(None if m is None else np.asarray(lesion_coverage(m, (data.size, data.size)), dtype=np.float32))
    return out


def lesion_view_grids(cfg: ExperimentConfig, data: PackData, lesions: list[np.ndarray | None], *,
                      img_size: int, grid: tuple[int, int], views: int, cache_dir: Path | None = None,
                      key: str | None = None, log: Any = print) -> np.ndarray:
    """``(views, N, rows, cols)`` float16: the lesion share of each token cell in each cached view.

    View ``e`` of row ``i`` is the augmentation drawn from ``rng([train.seed, e, i])``, exactly as
    ``training.frozen_prefix.view_cache`` draws it, so cell ``n`` of the grid is what token ``n`` of that
    view sees. Rows without a mask are NaN. With ``cache_dir`` and ``key`` the grids are kept beside the
    view cache (``<key>-lesion-<rows>x<cols>.npy``).
    """
    from training.augment import TrainTransform
    from training.data.dataset import PackDataset

    gh, gw = int(grid[0]), int(grid[1])
    path = cache_dir / f"{key}-lesion-{gh}x{gw}.npy" if cache_dir is not None and key else None
    if path is not None and path.is_file():
        log(f"lesion grids: reusing {path}")
        return np.load(path, mmap_mode="r")
    if len(lesions) != len(data):
        raise ValueError(f"{len(lesions)} lesion masks for a pack of {len(data)} rows")
    tf = TrainTransform(cfg.augment, img_size, cfg.data.mean, cfg.data.std)
    ds = PackDataset(data, np.arange(len(data)), [], img_size=img_size, mean=cfg.data.mean, std=cfg.data.std)
    out = np.full((views, len(data), gh, gw), np.nan, dtype=np.float16)
    rows = [i for i, m in enumerate(lesions) if m is not None]
    for e in range(views):
        for i in rows:
            _, warped = tf.with_lesion(ds.image(i), lesions[i], np.random.default_rng([cfg.train.seed, e, i]))
            assert warped is not None
            out[e, i] = lesion_cells(warped.numpy(), (gh, gw))
    log(f"lesion grids: {len(rows)} of {len(data)} rows have a mask, {views} views")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(path)
    return out


@contextmanager
def _running_stats_frozen(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with the batch as in training, but leave their running statistics alone."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom


def cam_mask_loss(cam: torch.Tensor, lesion: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """:func:`lsm_mask_loss` for a class activation map: ``-log`` of the CAM's mass on the lesion.

    ``cam`` is ``(B, rows, cols)`` non-negative (HiResCAM after ReLU), ``lesion`` the same grid's coverage
    (NaN for photos without a mask). A photo whose CAM is all zero contributes no gradient (nothing to move).
    """
    b = cam.shape[0]
    flat = cam.reshape(b, -1)
    alive = flat.detach().sum(dim=1) > 0
    if not bool(alive.any()):
        return flat.sum() * 0.0
    target = lesion.reshape(b, -1)
    target = torch.where(alive[:, None], target, torch.full_like(target, float("nan")))
    return lsm_mask_loss(flat, target, eps)


class CamMaskLoss(nn.Module):
    """``extra_loss``: pull the disease Grad-CAM (HiResCAM) of the *true* class onto the lesion.

    "Right for the right reasons" (Ross et al., IJCAI 2017) with masks instead of annotations of what to
    ignore. In frozen-prefix training the model's input is the cached CNN feature map at the token grid
    (stride 32), so the CAM of that input, ``ReLU(sum_k dY/dA_k * A_k)``, is computed with one extra
    forward and a double backward of the learnt layers only (``create_graph=True``), and its mass is pulled
    onto the lesion cells of the same view (the grids of :func:`lesion_view_grids`). The app explains a
    deeper, stride-16 map (``engine.explain.gradcam``); the gradient reaching it passes through the same
    learnt layers, which is why the loss is placed there. Photos without a mask or a known diagnosis
    contribute nothing.
    """

    def __init__(self, weight: float = 0.1, output: str = "disease_fused", eps: float = 1e-4) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight, self.output, self.eps = float(weight), output, float(eps)

    def forward(self, model: nn.Module, out: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> torch.Tensor:
        lesion, images = batch.get("lesion"), batch.get("images")
        anchor = next(iter(out.values())).sum() * 0.0
        if lesion is None or images is None or self.weight == 0.0 or images.ndim != 4:
            return anchor
        target = batch["targets"]["disease"]
        known = batch["masks"]["disease"] > 0
        lesion = torch.as_tensor(lesion).to(images.device)
        keep = known & torch.isfinite(lesion.reshape(len(lesion), -1)).all(dim=1)
        if not bool(keep.any()):
            return anchor
        x = images[keep].detach().requires_grad_(True)
        ctx = batch.get("context")
        from torch.nn.attention import SDPBackend, sdpa_kernel

        # the math attention kernel: the fused CPU kernels have no double backward
        with _running_stats_frozen(model), sdpa_kernel(SDPBackend.MATH):
            o = model(x) if ctx is None else model(x, ctx[keep])
        logits = o[self.output]
        y = target[keep].argmax(dim=1)
        chosen = logits.gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, x, create_graph=True)
        cam = torch.relu((grad * x).sum(dim=1))  # (b, h, w)
        grid = lesion[keep].reshape(len(cam), *lesion.shape[-2:]) if lesion.ndim == 3 else lesion[keep]
        if grid.ndim == 2:  # (b, rows*cols): the token grid, square
            side = round(grid.shape[1] ** 0.5)
            grid = grid.reshape(len(cam), side, side)
        if cam.shape[-2:] != grid.shape[-2:]:  # a finer map than the token grid: its mass per token cell
            cam = torch.nn.functional.adaptive_avg_pool2d(cam[:, None], tuple(grid.shape[-2:]))[:, 0]
        return self.weight * cam_mask_loss(cam.float(), grid, self.eps)
