"""Shared backbones producing ``(B, 1 + N, D)`` tokens (class token first) for the task heads.

Two kinds: a timm ViT (the paper's ViT-B/16 at 384 px), and a hybrid whose patch embedding is
an ImageNet-pretrained EfficientNet-Lite0/1/2 at stride 16 (the CPU models, since no pretrained ViT
weights can be had offline). Both expose ``blocks`` as a ``ModuleList`` of
:class:`~engine.models.blocks.Block` so distillation can keep chosen layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import ModelConfigError
from engine.models.blocks import Block
from engine.models.config import ModelConfig

__all__ = ["HybridLite0Backbone", "HybridLiteBackbone", "TokenBackbone", "ViTBackbone", "build_backbone"]


class TokenBackbone(nn.Module):
    """Common tail: class token + position embedding + ``depth`` transformer layers."""

    blocks: nn.ModuleList
    embed_dim: int

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.embed(x)
        attns: list[torch.Tensor] = []
        for blk in self.blocks:
            x, a = blk(x, need_weights=need_weights)
            if a is not None:
                attns.append(a)
        return x, attns


class HybridLiteBackbone(TokenBackbone):
    """An ImageNet EfficientNet-Lite stem at stride 16 -> 1x1 conv -> tokens (the CPU models' patch embedding).

    ``stem_stages`` 4 or 5 keep the CNN's first stages (80 / 112 channels for Lite0); 7 keeps the whole
    pretrained network including its 1280-channel head convolution, so the transformer layers start from
    the features a fine-tuned CNN would pool: at stride 32 (``patch_stride=32``), or with the last two
    stages dilated to stride 16 (timm's ``output_stride=16``; about 4x the cost of those stages).
    ``cls_init="gap"`` starts the class token at the mean of the patch tokens (plus a learned
    offset), so a disease head reading the class token begins where the CNN's global pooling is.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from engine.models.efficientnet_lite import create_efficientnet_lite

        variant = int(cfg.backbone.removeprefix("hybrid_lite"))
        if cfg.stem_stages not in (4, 5, 7):
            raise ModelConfigError("stem_stages must be 4, 5 or 7 (the whole network, dilated) to keep stride 16")
        whole = cfg.stem_stages == 7
        dilate = whole and cfg.patch_stride == 16
        cnn = create_efficientnet_lite(variant, pretrained=cfg.pretrained, **({"output_stride": 16} if dilate else {}))
        layers = [cnn.conv_stem, cnn.bn1, *[cnn.blocks[i] for i in range(cfg.stem_stages)]]
        if whole:
            layers += [cnn.conv_head, cnn.bn2]
            stem_ch = int(cnn.num_features)
        else:
            last = cnn.blocks[cfg.stem_stages - 1][-1]
            stem_ch = int((last.conv_pwl if hasattr(last, "conv_pwl") else last.conv_pw).out_channels)
        self.stem = nn.Sequential(*layers)
        self.cls_init = cfg.cls_init
        self.embed_dim = cfg.embed_dim
        self.proj = nn.Conv2d(stem_ch, cfg.embed_dim, kernel_size=1)
        gh, gw = cfg.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + gh * gw, cfg.embed_dim) * 0.02)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, drop=cfg.drop_rate, drop_path=dpr[i])
            for i in range(cfg.depth)
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        f = self.proj(self.stem(x))  # (B, D, H/stride, W/stride)
        tokens = f.flatten(2).transpose(1, 2)
        if tokens.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ModelConfigError(
                f"input gives {tokens.shape[1]} tokens but the model was built for {self.pos_embed.shape[1] - 1}"
            )
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        if self.cls_init == "gap":
            cls = cls + tokens.mean(dim=1, keepdim=True)
        return self.pos_drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)


HybridLite0Backbone = HybridLiteBackbone  # the first release's name


class ViTBackbone(TokenBackbone):
    """A timm ViT's patch embedding and first ``depth`` blocks; ``spare_blocks`` seed the task heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        import timm

        name = cfg.backbone.split(":", 1)[1]
        vit: Any = timm.create_model(
            name, pretrained=False, img_size=cfg.img_size, num_classes=0, drop_path_rate=cfg.drop_path_rate
        )
        if cfg.checkpoint_path:
            load_local_vit_checkpoint(vit, Path(cfg.checkpoint_path))
        if getattr(vit, "patch_embed", None) is None or vit.patch_embed.patch_size[0] != 16:
            raise ModelConfigError(f"{name} is not a ViT with 16-pixel patches")
        self.embed_dim = vit.embed_dim
        if self.embed_dim != cfg.embed_dim:
            raise ModelConfigError(f"{name} has embed_dim {self.embed_dim}; set embed_dim={self.embed_dim}")
        if cfg.depth + cfg.head_depth > len(vit.blocks):
            raise ModelConfigError(f"{name} has {len(vit.blocks)} blocks; depth + head_depth is too many")
        self.patch_embed, self.cls_token, self.pos_embed = vit.patch_embed, vit.cls_token, vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.norm_pre = vit.norm_pre
        mine = [_block_from_timm(b, cfg) for b in vit.blocks]
        self.blocks = nn.ModuleList(mine[: cfg.depth])
        # Not registered: heads copy them, so pretrained weights seed the two head layers as in the paper.
        self.spare_blocks: list[Block] = mine[cfg.depth : cfg.depth + cfg.head_depth]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.norm_pre(self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed))


def _block_from_timm(tb: Any, cfg: ModelConfig) -> Block:
    blk = Block(cfg.embed_dim, tb.attn.num_heads, cfg.mlp_ratio, qkv_bias=tb.attn.qkv.bias is not None)
    missing, unexpected = blk.load_state_dict(tb.state_dict(), strict=False)
    real_missing = [k for k in missing if k]
    real_unexpected = [k for k in unexpected if not k.startswith(("ls1", "ls2", "attn.q_norm", "attn.k_norm"))]
    if real_missing or real_unexpected:
        raise ModelConfigError(f"timm block layout differs: missing {real_missing}, unexpected {real_unexpected}")
    return blk


def load_local_vit_checkpoint(vit: Any, path: Path) -> None:
    """Initialise a timm ViT from a user-supplied file (safetensors or a tensor-only torch file)."""
    if not path.is_file():
        raise ModelConfigError("ViT checkpoint file not found", path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state.get("state_dict", state))
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn(state, vit)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    vit.load_state_dict(state, strict=False)


def build_backbone(cfg: ModelConfig) -> TokenBackbone:
    if cfg.backbone in ("hybrid_lite0", "hybrid_lite1", "hybrid_lite2"):
        return HybridLiteBackbone(cfg)
    if cfg.backbone.startswith("vit:"):
        return ViTBackbone(cfg)
    raise ModelConfigError(f"unknown backbone {cfg.backbone!r}")
