"""Multi-task loss, DermImitFormer §2 "Learning and Optimization", Eq. 5-7.

``L = w_d L_d + w_d' L_d' + w_b L_b + w_a L_a``: cross-entropy on the disease head's own logits d and
on the fused d' (Eq. 5), binary cross-entropy on multi-label heads (Eq. 6), summed (Eq. 7). Where the
taxonomy says a head is single-label (PAD-UFES-20's body part: one region per photo) it gets a
softmax cross-entropy instead of Eq. 6's sigmoid.

Targets are soft ``(B, C)`` (one-hot, smoothed or CutMix-mixed). Masks mark known labels: a masked
entry is multiplied out *before* reduction, so it contributes exactly zero gradient, and the mean is
taken over known entries only (a batch with nothing known for a head contributes 0 for that head).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.taxonomy import Taxonomy

__all__ = ["LOSS_TERMS", "MultiTaskLoss", "soft_cross_entropy"]

LOSS_TERMS = ("disease", "disease_fused", "body_part", "attributes")


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample ``-sum_c w_c t_c log softmax(z)_c`` (B,)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    if class_weights is not None:
        target = target * class_weights
    return -(target * logp).sum(dim=-1)


@dataclass
class LossOutput:
    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class MultiTaskLoss(nn.Module):
    """Eq. 7 with per-task ``weights``, label masks, label smoothing and optional disease class weights."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        heads: tuple[str, ...] | list[str],
        weights: Mapping[str, float] | None = None,
        *,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.heads = tuple(heads)
        self.multi = {h: taxonomy.head(h).multi_label for h in self.heads}
        self.weights = dict.fromkeys(LOSS_TERMS, 1.0) | dict(weights or {})
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights, persistent=False)

    def _single(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cw: bool) -> torch.Tensor:
        if self.label_smoothing > 0:
            c = target.shape[-1]
            mass = target.sum(dim=-1, keepdim=True)
            target = target * (1 - self.label_smoothing) + mass * self.label_smoothing / c
        per = soft_cross_entropy(logits, target, self.class_weights if cw else None)
        m = mask.float()
        return (per * m).sum() / m.sum().clamp_min(1.0)

    @staticmethod
    def _multi(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        per = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none") * m
        rows = (m.sum(dim=-1) > 0).float().sum()
        return per.sum() / rows.clamp_min(1.0)  # Eq. 6: sum over classes, mean over samples

    def forward(
        self, out: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> LossOutput:
        terms: dict[str, torch.Tensor] = {}
        for term in LOSS_TERMS:
            head = "disease" if term == "disease_fused" else term
            if head not in self.heads or term not in out or self.weights.get(term, 0.0) == 0.0:
                continue
            if term == "disease_fused" and out["disease_fused"] is out["disease"]:
                continue  # no fusion (single-task / plain baselines): d' is d, count it once
            if self.multi[head]:
                terms[term] = self._multi(out[term], targets[head], masks[head])
            else:
                terms[term] = self._single(out[term], targets[head], masks[head], cw=head == "disease")
        total = sum((self.weights[t] * v for t, v in terms.items()), start=torch.zeros(()))
        return LossOutput(total, terms)
