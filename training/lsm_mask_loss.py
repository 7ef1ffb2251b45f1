"""An auxiliary loss that pulls the Lesion Selection Module's scores toward the lesion (issue 11, item 4).

A proposal, not wired in: whether it is kept is decided by a CV run showing it costs no accuracy.

The LSM (DermImitFormer §2 Eq. 1) ranks patch tokens by the mutual attention ``s_n`` and keeps the
top K; nothing in the classification loss says those tokens must be lesion. On photos that have a
lesion mask, this loss reads the scores as a distribution over cells, ``p_n = s_n / sum_m s_m``, and
penalises the score mass that falls outside the lesion::

    L = -log( sum_n p_n * c_n + eps ),   c_n = lesion share of cell n (in [0, 1])

averaged over the photos of the batch that have a mask (photos without one contribute nothing).
It does not ask the scores to spread evenly over the lesion, only that their mass lies on it, which
is what the hit rate of the top K measures. The gradient reaches the attention maps of the head's
blocks (and, through them, the tokens), so it shapes *where the head attends*, not the classifier.

Wiring (the Trainer takes ``extra_loss(model, out, batch)``):

1. The dataset gives ``item["lesion"]``: the photo's mask warped by the *same* geometric
   augmentation as the pixels (rotation, crop, flips of :class:`training.augment.TrainTransform`;
   e.g. carried as a 4th channel through the geometry and split off before the colour jitter), then
   :func:`lesion_cells` on the model's grid; a NaN grid for a photo without a mask. With
   frozen-prefix training the cached views must keep their warped lesion grids beside them.
2. ``Trainer._step`` passes ``batch["lesion"]`` in the dict it hands to ``extra_loss``.
3. ``extra_loss=LsmMaskLoss(weight=0.1)`` in ``training.run.fit``; ``weight`` chosen by CV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from engine.metrics.localisation import lesion_coverage

__all__ = ["LsmMaskLoss", "lesion_cells", "lsm_mask_loss"]


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
