"""Cross-Interaction Module, DermImitFormer §2 Eq. 2-4 and Fig. 3.

A task's class token queries the layer-normed global average of another task's patch tokens:
``z = LN(GAP(p))``, ``Q = LN(g) W_Q``, ``K = z W_K``, ``V = z W_V``,
``g' = LN(g) + linear(softmax(Q K^T / sqrt(F / N_h)) V)``. With a single pooled key the softmax is
1 and the block reduces to ``LN(g) + W_o W_V z``; it is kept in attention form so that a context of
several tokens (e.g. the LSM's selected tokens) works unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CrossAttention", "CrossInteraction"]


class CrossAttention(nn.Module):
    """Eq. 3-4 for one (query task, context task) pair; Eq. 2's LN over the pooled context is ``norm_ctx``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_ctx = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``query`` (B, F) class token; ``context`` (B, M, F) tokens, globally average-pooled here (Eq. 2)."""
        b, f = query.shape
        h, hd = self.num_heads, f // self.num_heads
        z = self.norm_ctx(context.mean(dim=1, keepdim=True))  # (B, 1, F)
        gq = self.norm_q(query)
        q = self.q(gq).reshape(b, 1, h, hd).transpose(1, 2)
        k = self.k(z).reshape(b, -1, h, hd).transpose(1, 2)
        v = self.v(z).reshape(b, -1, h, hd).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1) / hd**0.5).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, f)
        return gq + self.proj(out)



class CrossInteraction(nn.Module):
    """Disease <-> body part and disease <-> attribute fusion of Fig. 3.

    Order matters: g_D is first fused with body-part patches (g_D^B) and g_D^B then replaces g_D in
    the attribute fusion, as the paper states. Local tokens (means of LSM-selected tokens) are fused
    between disease and attribute only, since the body-part head has no LSM.
    """

    def __init__(self, dim: int, num_heads: int, body_part: bool, attributes: bool, local: bool) -> None:
        super().__init__()
        self.body_part, self.attributes, self.local = body_part, attributes, local and attributes
        if body_part:
            self.d_from_b = CrossAttention(dim, num_heads)  # g_D^B
            self.b_from_d = CrossAttention(dim, num_heads)  # g_B^D
        if attributes:
            self.d_from_a = CrossAttention(dim, num_heads)  # g_D^A (query g_D^B)
            self.a_from_d = CrossAttention(dim, num_heads)  # g_A^D
        if self.local:
            self.ld_from_la = CrossAttention(dim, num_heads)  # l_D^A
            self.la_from_ld = CrossAttention(dim, num_heads)  # l_A^D

    def forward(
        self, g: dict[str, torch.Tensor], p: dict[str, torch.Tensor], sel: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``g`` class tokens (B,F), ``p`` patch tokens (B,N,F), ``sel`` LSM-selected tokens (B,K,F)."""
        out: dict[str, torch.Tensor] = {}
        g_d = g["disease"]
        if self.body_part:
            out["g_B"] = self.b_from_d(g["body_part"], p["disease"])
            g_d = self.d_from_b(g_d, p["body_part"])
        if self.attributes:
            out["g_A"] = self.a_from_d(g["attributes"], p["disease"])
            g_d = self.d_from_a(g_d, p["attributes"])
        out["g_D"] = g_d
        if self.local:
            out["l_D"] = self.ld_from_la(sel["disease"].mean(dim=1), sel["attributes"])
            out["l_A"] = self.la_from_ld(sel["attributes"].mean(dim=1), sel["disease"])
        return out
