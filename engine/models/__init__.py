"""Models: DermImitFormer, its parts (LSM, CIM), backbones, baselines and the registry."""

from engine.models.config import ModelConfig
from engine.models.registry import TABLE1_ROWS, build_model, create_model, list_models, model_config

__all__ = ["TABLE1_ROWS", "ModelConfig", "build_model", "create_model", "list_models", "model_config"]
