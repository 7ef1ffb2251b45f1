"""The frozen model config that travels with the weights in a bundle (timm's pretrained-cfg habit)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from engine.context import ContextEncoding, ContextError
from engine.errors import ModelConfigError

__all__ = ["BUILD_ERRORS", "FUSIONS", "HEADS_ORDER", "ModelConfig"]

HEADS_ORDER = ("disease", "body_part", "attributes")
FUSIONS = ("none", "concat", "cim")
BUILD_ERRORS: tuple[type[Exception], ...] = (ArithmeticError, AssertionError, AttributeError, LookupError, RuntimeError,
                                             TypeError, ValueError, ModelConfigError)
"""What building modules from a well-typed but impossible config raises (``embed_dim`` not divisible by
``num_heads``, an unknown timm name, ...): a loader reading the config from a file turns these into its typed error."""


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
        """A config read from a file (a bundle's or an ONNX file's header): every value is checked against
        its field's type, and sizes against :data:`_MAX_SIZE`, so a foreign or hand-edited header fails here
        with :class:`ModelConfigError` instead of as a ``TypeError`` (or a model of a billion layers) once
        the model is built."""
        known = {f.name: str(f.type) for f in fields(cls)}
        extra = set(data) - set(known)
        if extra:
            raise ModelConfigError(f"unknown model config keys {sorted(extra)}")
        for key, value in data.items():
            check = _FIELD_CHECKS.get(known[key])
            if check is not None and not check(value):
                raise ModelConfigError(f"model config {key!r} must be {known[key]}, got {value!r:.80}")
            limit = _MAX_SIZE.get(key)
            if limit is not None and not 0 <= value <= limit:
                raise ModelConfigError(f"model config {key!r} = {value} is outside 0..{limit}")
        data = dict(data)
        if "heads" in data:
            data["heads"] = tuple(data["heads"])
        return cls(**data)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_FIELD_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int": _is_int,
    "float": lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v),
    "bool": lambda v: isinstance(v, bool),
    "tuple[str, ...]": lambda v: isinstance(v, list | tuple) and all(isinstance(x, str) for x in v),
    "dict[str, int]": lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_int(n) and 0 < n <= 100_000
                                                            for k, n in v.items()),
}
"""Annotation of a ModelConfig field -> whether a value read from JSON fits it."""

_MAX_SIZE = {"img_size": 8192, "embed_dim": 16384, "depth": 256, "num_heads": 1024, "head_depth": 256,
             "top_k": 65536, "stem_stages": 64}
"""Bounds far above any real model, so a header cannot make building the model run for hours."""
