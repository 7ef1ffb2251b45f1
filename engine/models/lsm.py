"""Lesion Selection Module, DermImitFormer §2 Eq. 1 (after FFVT's mutual attention weight selection).

For each attention head m, softmax is applied to the first row (class token -> patches) and to the
first column (patches -> class token) of the head's attention matrix ``A^m`` over the N_p patch
tokens; the mutual score is ``s_n = mean_m a^m_{0,n} * a^m_{n,0}``. The K tokens with the highest
``s_n`` are the model's "zoom-in". As in the paper, ``A^m`` is the attention matrix after its own
softmax; the second softmax only re-normalises over patch tokens, so rankings follow the products.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LesionSelection", "mutual_attention_scores"]


def mutual_attention_scores(attn: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``attn`` is (B, heads, 1+N, 1+N) with the class token first; returns s, (B, N)."""
    a_0n = attn[:, :, 0, 1:].softmax(dim=-1)
    a_n0 = attn[:, :, 1:, 0].softmax(dim=-1)
    return (a_0n * a_n0).mean(dim=1)


class LesionSelection(nn.Module):
    """Scores patch tokens from a head's attention maps and gathers the top-K of them.

    The scores of a head's layers are averaged (each layer of the head feeds the LSM, §2), the
    top-K indices are taken from that average, and the local class token ``l`` is the mean of the
    selected output tokens. Selection is a hard top-K: gradients flow through the gathered tokens.
    """

    def __init__(self, top_k: int) -> None:
        super().__init__()
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k

    def forward(
        self, patch_tokens: torch.Tensor, attentions: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (scores (B,N), indices (B,K), selected tokens (B,K,D), local token (B,D))."""
        scores = torch.stack([mutual_attention_scores(a) for a in attentions]).mean(dim=0)
        k = min(self.top_k, scores.shape[1])
        idx = scores.topk(k, dim=1).indices
        selected = patch_tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, patch_tokens.shape[-1]))
        return scores, idx, selected, selected.mean(dim=1)
