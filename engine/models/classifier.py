"""Plain CNN/ViT baselines with the same output dict as DermImitFormer.

Table 1's floor (a fine-tuned EfficientNet-Lite0 classifier), the DermImitFormer paper's ViT-Base
and ResNet-50 baselines, and the multitask-lesion paper's ResNet-50 with a lesion head and a
body-location head (heads = disease + body_part) all share this module: a timm trunk, global
pooling, and one linear layer per head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.errors import ModelConfigError
from engine.models.config import ModelConfig

__all__ = ["PlainClassifier"]


class PlainClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        import timm

        self.cfg = cfg
        kind, _, name = cfg.backbone.partition(":")
        lite = {"lite0": 0, "lite1": 1, "lite2": 2, "tf_efficientnet_lite0": 0, "tf_efficientnet_lite1": 1,
                "tf_efficientnet_lite2": 2}
        if kind == "cnn" and name in lite:
            from engine.models.efficientnet_lite import create_efficientnet_lite

            trunk: Any = create_efficientnet_lite(lite[name], pretrained=cfg.pretrained)
            trunk.reset_classifier(0)
        elif kind in ("cnn", "vit"):
            trunk = timm.create_model(name, pretrained=False, num_classes=0, **_size_kw(kind, cfg))
        else:
            raise ModelConfigError(f"unknown classifier backbone {cfg.backbone!r}")
        self.trunk = trunk
        feat = int(trunk.num_features)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.heads = nn.ModuleDict({h: nn.Linear(feat, cfg.num_classes[h]) for h in cfg.heads})
        self.embed_dim_fused = feat

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.trunk(x)
        out = {h: head(self.drop(emb)) for h, head in self.heads.items()}
        out["disease_fused"] = out["disease"]
        out["embedding"] = emb
        return out

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.trunk.parameters()), "heads": list(self.heads.parameters())}


def _size_kw(kind: str, cfg: ModelConfig) -> dict[str, Any]:
    return {"img_size": cfg.img_size} if kind == "vit" else {}
