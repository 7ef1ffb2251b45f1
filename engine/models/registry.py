"""Named model configurations: ``create_model(name, **overrides)`` and ``list_models()`` (timm's habit).

Also holds the rows of DermImitFormer Table 1 as config overrides, so an ablation is a name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from engine.errors import ModelConfigError
from engine.models.config import ModelConfig

__all__ = ["TABLE1_ROWS", "build_model", "create_model", "list_models", "model_config", "register_model"]

_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_config(name: str, **overrides: Any) -> ModelConfig:
    if name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    cfg = _REGISTRY[name]()
    return cfg.replace(**overrides) if overrides else cfg


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.arch == "dermimitformer":
        from engine.models.dermimitformer import DermImitFormer

        return DermImitFormer(cfg)
    if cfg.arch == "classifier":
        from engine.models.classifier import PlainClassifier

        return PlainClassifier(cfg)
    raise ModelConfigError(f"unknown architecture {cfg.arch!r}")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; keyword overrides replace fields of its :class:`ModelConfig`."""
    return build_model(model_config(name, **overrides))


# DermImitFormer Table 1: dimension x LSM x fusion. "ST" is the single-task mode of Table 2.
TABLE1_ROWS: dict[str, dict[str, Any]] = {
    "D": {"heads": ("disease",), "lsm": False, "fusion": "none"},
    "D+LSM": {"heads": ("disease",), "lsm": True, "fusion": "none"},
    "D+B+LSM+concat": {"heads": ("disease", "body_part"), "lsm": True, "fusion": "concat"},
    "D+A+LSM+concat": {"heads": ("disease", "attributes"), "lsm": True, "fusion": "concat"},
    "D+B+A+LSM+concat": {"heads": ("disease", "body_part", "attributes"), "lsm": True, "fusion": "concat"},
    "D+B+A+LSM+CIM": {"heads": ("disease", "body_part", "attributes"), "lsm": True, "fusion": "cim"},
    "ST": {"heads": ("disease",), "lsm": True, "fusion": "none"},
}


@register_model
def dermimitformer_lite0() -> ModelConfig:
    """The CPU default: ImageNet EfficientNet-Lite0 stem to stride 16 + 2 shared + 2x3 head layers."""
    return ModelConfig(backbone="hybrid_lite0", img_size=224, embed_dim=192, depth=2, num_heads=3, top_k=8)


@register_model
def dermimitformer_lite2() -> ModelConfig:
    """The second CPU default: the whole ImageNet EfficientNet-Lite2 (1280-channel features, one token per
    32 px) as patch embedding, class tokens started at the stem's global average, 1 shared + 2x3 head
    layers; K=8 of 64 tokens at 256 px."""
    return ModelConfig(backbone="hybrid_lite2", img_size=256, embed_dim=192, depth=1, num_heads=3, head_depth=2,
                       top_k=8, stem_stages=7, patch_stride=32, cls_init="gap")


@register_model
def dermimitformer_lite1() -> ModelConfig:
    """As ``dermimitformer_lite2`` on the EfficientNet-Lite1 stem."""
    return dermimitformer_lite2().replace(backbone="hybrid_lite1")


@register_model
def dermimitformer_vit_b16_384() -> ModelConfig:
    """The paper's configuration: ViT-B/16 at 384 px, 10 shared + 2 head layers, K=24 of 576 tokens."""
    return ModelConfig(
        backbone="vit:vit_base_patch16_384", img_size=384, embed_dim=768, depth=10, num_heads=12,
        top_k=24, pretrained=False,
    )


@register_model
def dermimitformer_st_lite0() -> ModelConfig:
    """DermImitFormer-ST (single task, no CIM) on the CPU stem."""
    return dermimitformer_lite0().replace(**TABLE1_ROWS["ST"])


@register_model
def dermimitformer_tiny() -> ModelConfig:
    """A small randomly initialised model for tests and smoke runs (no pretrained weights)."""
    return ModelConfig(
        backbone="hybrid_lite0", img_size=96, embed_dim=64, depth=1, num_heads=2, head_depth=2, top_k=4,
        pretrained=False, stem_stages=4,
    )


@register_model
def lite0_classifier() -> ModelConfig:
    """Table 1's floor: fine-tuned ImageNet EfficientNet-Lite0, one linear layer per head."""
    return ModelConfig(arch="classifier", backbone="cnn:lite0", heads=("disease",), fusion="none", lsm=False)


@register_model
def lite1_classifier() -> ModelConfig:
    """Fine-tuned ImageNet EfficientNet-Lite1 floor."""
    return lite0_classifier().replace(backbone="cnn:lite1")


@register_model
def lite2_classifier() -> ModelConfig:
    """Fine-tuned ImageNet EfficientNet-Lite2 floor (the strongest pretrained CNN available offline)."""
    return lite0_classifier().replace(backbone="cnn:lite2")


@register_model
def resnet50_classifier() -> ModelConfig:
    """ResNet-50 baseline of DermImitFormer Table 2 (random init here: no weights offline)."""
    return ModelConfig(arch="classifier", backbone="cnn:resnet50", heads=("disease",), fusion="none",
                       lsm=False, pretrained=False)


@register_model
def resnet50_lesion_body() -> ModelConfig:
    """The multitask-lesion paper's ResNet-50 with a lesion head and a body-location head."""
    return ModelConfig(arch="classifier", backbone="cnn:resnet50", heads=("disease", "body_part"),
                       fusion="none", lsm=False, pretrained=False)


@register_model
def vit_base_classifier() -> ModelConfig:
    """ViT-Base/16 baseline of Table 2."""
    return ModelConfig(arch="classifier", backbone="vit:vit_base_patch16_384", img_size=384, heads=("disease",),
                       fusion="none", lsm=False, pretrained=False)
