"""The frozen model config that travels with the weights in a bundle (timm's pretrained-cfg habit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from engine.context import ContextEncoding, ContextError
from engine.errors import ModelConfigError

__all__ = ["FUSIONS", "HEADS_ORDER", "ModelConfig"]

HEADS_ORDER = ("disease", "body_part", "attributes")
FUSIONS = ("none", "concat", "cim")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's modules; weights come separately.

    ``backbone`` is ``"hybrid_lite0"``, ``"hybrid_lite1"`` or ``"hybrid_lite2"`` (an ImageNet
    EfficientNet-Lite stem to stride 16, then ``depth`` transformer layers; ``stem_stages`` 4 or 5 cut
    the CNN there, 7 keeps the whole pretrained network with its last stages dilated to stride 16)
    or ``"vit:<timm name>"`` (a timm ViT whose first ``depth`` blocks
    are shared and whose next blocks initialise the task heads), or ``"cnn:<timm name>"`` for the
    plain CNN baselines. Ablation rows of DermImitFormer Table 1 are ``heads`` x ``lsm`` x ``fusion``.
    """

    arch: str = "dermimitformer"
    backbone: str = "hybrid_lite0"
    img_size: int = 224
    embed_dim: int = 192
    depth: int = 2
    num_heads: int = 3
    head_depth: int = 2
    mlp_ratio: float = 4.0
    heads: tuple[str, ...] = HEADS_ORDER
    num_classes: dict[str, int] = field(default_factory=lambda: {"disease": 6, "body_part": 14, "attributes": 6})
    lsm: bool = True
    top_k: int = 8
    fusion: str = "cim"
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    pretrained: bool = True
    checkpoint_path: str | None = None
    stem_stages: int = 5
    patch_stride: int = 16  # 32 only with stem_stages=7: the whole CNN undilated, one token per 32 px
    cls_init: str = "learned"  # "learned" | "gap": the class token starts as the mean of the stem's tokens
    context_fields: tuple[str, ...] = ()  # clinical context fused into the disease embedding (engine.context)
    context_sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if "disease" not in self.heads:
            raise ModelConfigError("every model has a disease head")
        unknown = set(self.heads) - set(HEADS_ORDER)
        if unknown:
            raise ModelConfigError(f"unknown heads {sorted(unknown)}; choose from {HEADS_ORDER}")
        if self.fusion not in FUSIONS:
            raise ModelConfigError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.fusion != "none" and len(self.heads) == 1:
            raise ModelConfigError("fusion needs at least two heads; use fusion='none' for single-task")
        missing = [h for h in self.heads if h not in self.num_classes]
        if missing:
            raise ModelConfigError(f"num_classes lacks {missing}")
        object.__setattr__(self, "heads", tuple(h for h in HEADS_ORDER if h in self.heads))
        object.__setattr__(self, "context_fields", tuple(self.context_fields))
        object.__setattr__(self, "context_sites", tuple(self.context_sites))
        if self.patch_stride not in (16, 32) or (self.patch_stride == 32 and self.stem_stages != 7):
            raise ModelConfigError("patch_stride is 16, or 32 with the whole CNN stem (stem_stages=7)")
        if self.cls_init not in ("learned", "gap"):
            raise ModelConfigError(f"cls_init must be 'learned' or 'gap', got {self.cls_init!r}")
        if self.context_fields:
            self.context_encoding()  # validates the fields

    def context_encoding(self) -> ContextEncoding | None:
        """How the clinical context is encoded for this model, or ``None`` for a photo-only model."""
        if not self.context_fields:
            return None
        try:
            return ContextEncoding(self.context_fields, self.context_sites)
        except ContextError as exc:
            raise ModelConfigError(str(exc)) from exc

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, cols): one token per ``patch_stride`` pixels."""
        return self.img_size // self.patch_stride, self.img_size // self.patch_stride

    @property
    def num_prefix_tokens(self) -> int:
        return 0 if self.arch == "classifier" else 1

    def replace(self, **overrides: Any) -> ModelConfig:
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["heads"] = list(self.heads)
        d["context_fields"] = list(self.context_fields)
        d["context_sites"] = list(self.context_sites)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        extra = set(data) - known
        if extra:
            raise ModelConfigError(f"unknown model config keys {sorted(extra)}")
        data = dict(data)
        if "heads" in data:
            data["heads"] = tuple(data["heads"])
        return cls(**data)
