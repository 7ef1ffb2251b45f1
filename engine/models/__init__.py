"""Models: DermImitFormer, its parts (LSM, CIM), backbones, baselines and the registry.

``ModelConfig`` is plain Python; everything else needs torch and is imported on first use (PEP 562), so
reading a bundle's config (the ONNX Runtime prediction path) never imports torch.
"""

from typing import Any

from engine.models.config import ModelConfig

__all__ = ["TABLE1_ROWS", "ModelConfig", "build_model", "create_model", "list_models", "model_config"]

_REGISTRY_NAMES = frozenset({"TABLE1_ROWS", "build_model", "create_model", "list_models", "model_config"})


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        from engine.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
