"""DermImitFormer (Zhou et al., MICCAI 2023), §2 and Fig. 2.

A shared ViT backbone feeds three task heads (disease D, body part B, attributes A), each of
``head_depth`` (paper: 2) independent transformer layers. The D and A heads run the Lesion
Selection Module on their attention maps; the Cross-Interaction Module fuses the heads' class
tokens with pooled patch tokens of the other tasks, and the fused tokens are concatenated for the
final predictions. ``disease`` is the disease head's own prediction d, ``disease_fused`` is d'
(Eq. 5 trains both). Ablation rows of Table 1 are config switches (see ``engine.models.registry``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from engine.models.backbones import TokenBackbone, ViTBackbone, build_backbone
from engine.models.blocks import Block
from engine.models.cim import CrossInteraction
from engine.models.config import ModelConfig
from engine.models.lsm import LesionSelection

__all__ = ["LSM_HEADS", "ContextFiLM", "DermImitFormer", "HeadFeatures", "TaskHead"]

LSM_HEADS = ("disease", "attributes")


class HeadFeatures(dict[str, torch.Tensor]):
    """One head's outputs: ``g`` class token, ``p`` patch tokens and, with LSM, ``scores``,
    ``indices``, ``selected`` and ``local`` (the mean of the selected tokens, l in Fig. 3)."""


class TaskHead(nn.Module):
    def __init__(self, cfg: ModelConfig, lsm: bool, seed_blocks: list[Block] | None = None) -> None:
        super().__init__()
        if seed_blocks:
            self.blocks = nn.ModuleList(copy.deepcopy(b) for b in seed_blocks)
        else:
            self.blocks = nn.ModuleList(
                Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, drop=cfg.drop_rate, drop_path=cfg.drop_path_rate)
                for _ in range(cfg.head_depth)
            )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.lsm = LesionSelection(cfg.top_k) if lsm else None

    def forward(self, x: torch.Tensor) -> HeadFeatures:
        attns: list[torch.Tensor] = []
        for blk in self.blocks:
            x, a = blk(x, need_weights=self.lsm is not None)
            if a is not None:
                attns.append(a)
        x = self.norm(x)
        out = HeadFeatures(g=x[:, 0], p=x[:, 1:])
        if self.lsm is not None:
            out["scores"], out["indices"], out["selected"], out["local"] = self.lsm(out["p"], attns)
        return out


class DermImitFormer(nn.Module):
    """``forward(x)`` returns a dict of tensors; the keys present depend on the heads and LSM:

    ``disease`` (d), ``disease_fused`` (d'), ``body_part``, ``attributes`` logits;
    ``lsm_disease`` / ``lsm_attributes`` token scores (B, N); ``selected_disease`` /
    ``selected_attributes`` token indices (B, K); ``embedding`` (B, F), the input of d'.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone: TokenBackbone = build_backbone(cfg)
        seeds = self.backbone.spare_blocks if isinstance(self.backbone, ViTBackbone) else None
        self.heads = nn.ModuleDict(
            {h: TaskHead(cfg, lsm=cfg.lsm and h in LSM_HEADS, seed_blocks=seeds) for h in cfg.heads}
        )
        d = cfg.embed_dim
        local_d = cfg.lsm  # disease head contributes l_D
        local_a = cfg.lsm and "attributes" in cfg.heads
        self.cim = (
            CrossInteraction(d, cfg.num_heads, "body_part" in cfg.heads, "attributes" in cfg.heads, cfg.lsm)
            if cfg.fusion == "cim"
            else None
        )
        self.head_d = _Classifier(d * (1 + local_d), cfg.num_classes["disease"], cfg.drop_rate)
        if "body_part" in cfg.heads:
            self.head_b = _Classifier(d, cfg.num_classes["body_part"], cfg.drop_rate)
        if "attributes" in cfg.heads:
            self.head_a = _Classifier(d * (1 + local_a), cfg.num_classes["attributes"], cfg.drop_rate)
        self.embed_dim_fused = d * (1 + local_d + ("body_part" in cfg.heads) + ("attributes" in cfg.heads) + local_a)
        if cfg.fusion != "none":
            self.head_fused = _Classifier(self.embed_dim_fused, cfg.num_classes["disease"], cfg.drop_rate)
        enc = cfg.context_encoding()
        self.context_dim = enc.dim if enc is not None else 0
        self.context_film = ContextFiLM(self.context_dim, self.embed_dim_fused) if enc is not None else None

    # timm-style split -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> dict[str, HeadFeatures]:
        tokens, _ = self.backbone(x)
        return {name: head(tokens) for name, head in self.heads.items()}

    def forward_head(
        self, feats: dict[str, HeadFeatures], pre_logits: bool = False, context: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        fd = feats["disease"]
        own_d = [fd["g"], fd["local"]] if cfg.lsm else [fd["g"]]
        tokens = self._fused_tokens(feats)
        out: dict[str, torch.Tensor] = {}
        out["disease"] = self.head_d(torch.cat(own_d, dim=-1))
        if "body_part" in cfg.heads:
            out["body_part"] = self.head_b(tokens["g_B"])
        if "attributes" in cfg.heads:
            a = [tokens["g_A"], tokens["l_A"]] if cfg.lsm else [tokens["g_A"]]
            out["attributes"] = self.head_a(torch.cat(a, dim=-1))
        if cfg.fusion == "none":
            embedding = torch.cat(own_d, dim=-1)
            if self.context_film is not None:
                embedding = self.context_film(embedding, context)
                out["disease"] = self.head_d(embedding)
            out["disease_fused"] = out["disease"]
        else:
            order = ["g_D", "l_D", "g_B", "g_A", "l_A"]
            embedding = torch.cat([tokens[k] for k in order if k in tokens], dim=-1)
            if self.context_film is not None:
                embedding = self.context_film(embedding, context)
            out["disease_fused"] = self.head_fused(embedding)
        out["embedding"] = embedding
        for h in LSM_HEADS:
            if h in feats and "scores" in feats[h]:
                out[f"lsm_{h}"] = feats[h]["scores"]
                out[f"selected_{h}"] = feats[h]["indices"]
        if pre_logits:
            return {"embedding": embedding}
        return out

    def _fused_tokens(self, feats: dict[str, HeadFeatures]) -> dict[str, torch.Tensor]:
        """g_D, l_D, g_B, g_A, l_A after CIM (Eq. 2-4), or the heads' own tokens without it."""
        if self.cim is not None:
            g = {h: f["g"] for h, f in feats.items()}
            p = {h: f["p"] for h, f in feats.items()}
            sel = {h: f["selected"] for h, f in feats.items() if "selected" in f}
            fused = self.cim(g, p, sel)
            if self.cfg.lsm and "l_D" not in fused:
                fused["l_D"] = feats["disease"]["local"]
            return fused
        tokens = {"g_D": feats["disease"]["g"]}
        if self.cfg.lsm:
            tokens["l_D"] = feats["disease"]["local"]
        if "body_part" in feats:
            tokens["g_B"] = feats["body_part"]["g"]
        if "attributes" in feats:
            tokens["g_A"] = feats["attributes"]["g"]
            if self.cfg.lsm:
                tokens["l_A"] = feats["attributes"]["local"]
        return tokens

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``context`` (B, context_dim) from :class:`engine.context.ContextEncoding`; ``None`` = photo only."""
        return self.forward_head(self.forward_features(x), context=context)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Pretrained part vs the rest, for discriminative learning rates and two-phase fine-tuning.

        On the hybrid stems only the pretrained CNN is "backbone"; its token projection, position
        embedding and transformer layers start from random weights and learn at the heads' rate.
        """
        stem = getattr(self.backbone, "stem", None)
        backbone = list(stem.parameters()) if stem is not None else list(self.backbone.parameters())
        ids = {id(p) for p in backbone}
        return {"backbone": backbone, "heads": [p for p in self.parameters() if id(p) not in ids]}


class ContextFiLM(nn.Module):
    """FiLM of the disease embedding by the clinical context: ``e * (1 + gamma(c)) + beta(c)``.

    The MLP has no biases and GELU(0) = 0, so an all-absent context (zeros) is exactly the identity:
    the photo-only differential of a context model is its image pathway, whatever the training saw.
    The last layer starts at zero, so training begins from the photo-only model.
    """

    def __init__(self, context_dim: int, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.context_dim = context_dim
        last = nn.Linear(hidden, 2 * dim, bias=False)
        nn.init.zeros_(last.weight)
        self.net = nn.Sequential(nn.Linear(context_dim, hidden, bias=False), nn.GELU(), last)

    def forward(self, embedding: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if context is None:
            return embedding
        gamma, beta = self.net(context.to(embedding.dtype)).chunk(2, dim=-1)
        return embedding * (1 + gamma) + beta


class _Classifier(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, drop: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.norm(x)))
