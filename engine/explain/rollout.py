"""Attention rollout (Abnar & Zuidema, ACL 2020) through the shared backbone and one task head.

Each layer's attention is averaged over heads (or max/min), mixed with the identity for the
residual path, ``Â = 0.5 A + 0.5 I`` re-normalised per row, and the layers are multiplied in
order; the class token's row over the patch tokens is the map. The blocks are run with
``need_weights=True`` because the fused attention kernel never forms the matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.errors import ModelConfigError
from engine.explain.lsm import normalize_map

__all__ = ["attention_rollout", "collect_attentions", "rollout_from_attentions"]

_FUSIONS = ("mean", "max", "min")


@torch.inference_mode()
def collect_attentions(model: nn.Module, x: torch.Tensor, head: str = "disease") -> list[torch.Tensor]:
    """Attention probabilities ``(B, heads, T, T)`` of every backbone block, then of ``head``'s blocks."""
    backbone = getattr(model, "backbone", None)
    heads = getattr(model, "heads", None)
    if backbone is None or not isinstance(heads, nn.ModuleDict) or head not in heads:
        raise ModelConfigError(f"attention rollout needs a DermImitFormer with a {head!r} head")
    with torch.autocast(x.device.type, enabled=False):
        tokens, attns = backbone(x.float(), need_weights=True)
        blocks: nn.ModuleList = heads[head].blocks  # type: ignore[assignment]
        for blk in blocks:
            tokens, a = blk(tokens, need_weights=True)
            attns.append(a)
    return list(attns)


def rollout_from_attentions(
    attentions: list[torch.Tensor], num_prefix_tokens: int = 1, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """The rolled-out attention of the first (class) token to the patch tokens, ``(B, N)``."""
    if head_fusion not in _FUSIONS:
        raise ValueError(f"head_fusion must be one of {_FUSIONS}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError("discard_ratio must be in [0, 1)")
    if not attentions:
        raise ModelConfigError("no attention maps to roll out")
    b, _, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=torch.float32, device=attentions[0].device)
    result = eye.expand(b, t, t)
    for a in attentions:
        a = a.float()
        fused = a.mean(dim=1) if head_fusion == "mean" else a.amax(dim=1) if head_fusion == "max" else a.amin(dim=1)
        if discard_ratio > 0:
            # Drop the weakest links but keep class->class, as in jacobgil/vit-explain.
            flat = fused.reshape(b, -1).clone()
            k = int(flat.shape[1] * discard_ratio)
            idx = flat.topk(k, dim=-1, largest=False).indices
            flat.scatter_(1, idx, 0.0)
            flat[:, 0] = fused.reshape(b, -1)[:, 0]
            fused = flat.reshape(b, t, t)
        a_hat = 0.5 * fused + 0.5 * eye
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)
        result = a_hat @ result
    return result[:, 0, num_prefix_tokens:]


def attention_rollout(
    model: nn.Module,
    batch: torch.Tensor | np.ndarray,
    head: str = "disease",
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> np.ndarray:
    """Rollout maps on the token grid, min-max scaled to [0, 1]: ``(B, rows, cols)``, or ``(rows, cols)`` for one
    photo. ``head`` chooses which task head's blocks follow the shared backbone."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise ModelConfigError("attention rollout needs a model with a ModelConfig (.cfg)")
    x = torch.as_tensor(batch).float()
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    x = x.to(next(model.parameters()).device)
    attns = collect_attentions(model, x, head)
    scores = rollout_from_attentions(attns, cfg.num_prefix_tokens, head_fusion, discard_ratio)
    gh, gw = cfg.grid_size
    maps = np.stack([normalize_map(s.reshape(gh, gw).cpu().numpy()) for s in scores])
    return maps[0] if single else maps
