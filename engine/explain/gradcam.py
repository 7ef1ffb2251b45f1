"""Grad-CAM (Selvaraju et al. 2017) for any head and class of DermImitFormer, via pytorch-grad-cam.

Target layer: ``model.heads[head].blocks[-1].norm1``, the normalised tokens *entering* the head's
last attention block. After that block the head's patch tokens reach the logits only through a
global average (CIM, Eq. 2) and the LSM's gathered tokens, so gradients at the head's output are
almost uniform over patches and the CAM degenerates into an activation map; before the last
attention, the class token's gradient is spread over the patches by that attention, which is what
makes the map spatial (jacobgil's ViT recipe). The tokens are still 1:1 with image patches, so
``TokenGridReshape`` (the model's own grid and prefix-token count) turns them into a feature map.

Cost: all parameters are frozen for the call and a forward hook re-roots the graph at the target
layer (its output is detached and made to require grad), so autograd only records and
back-propagates the layers after it: about one forward pass instead of ~3. CAMs run in fp32 with
autocast off (pytorch-grad-cam converts to numpy, which has no bf16).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.errors import ModelConfigError

__all__ = [
    "HEAD_OUTPUTS",
    "HeadClassTarget",
    "HeadLogits",
    "TokenGridReshape",
    "default_target_layer",
    "grad_cam",
]

_CAM_LOCK = threading.Lock()  # the requires_grad flags are model state: one CAM at a time

HEAD_OUTPUTS = {"disease": "disease_fused", "body_part": "body_part", "attributes": "attributes"}
"""Head name -> the output whose logits are explained (the differential is d', ``disease_fused``)."""


@dataclass(frozen=True)
class TokenGridReshape:
    """pytorch-grad-cam ``reshape_transform``: ``(B, P + rows*cols, D)`` tokens -> ``(B, D, rows, cols)``."""

    grid: tuple[int, int]
    num_prefix_tokens: int

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid
        if tokens.ndim != 3 or tokens.shape[1] != self.num_prefix_tokens + gh * gw:
            raise ModelConfigError(
                f"target layer gives tokens of shape {tuple(tokens.shape)}, expected (B, "
                f"{self.num_prefix_tokens} + {gh}x{gw}, D)"
            )
        x = tokens[:, self.num_prefix_tokens :, :]
        return x.reshape(x.shape[0], gh, gw, x.shape[2]).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class HeadClassTarget:
    """pytorch-grad-cam target: the (pre-softmax/sigmoid) logit of ``class_index`` in ``head``'s output."""

    head: str
    class_index: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[..., self.class_index]


class HeadLogits(nn.Module):
    """Wraps the dict-returning model so CAM sees one output's ``(B, C)`` logits."""

    def __init__(self, model: nn.Module, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.output not in out:
            raise ModelConfigError(f"the model has no output {self.output!r} (outputs: {sorted(out)})")
        logits: torch.Tensor = out[self.output]
        return logits


def default_target_layer(model: nn.Module, head: str) -> nn.Module:
    """``model.heads[head].blocks[-1].norm1`` (see the module docstring for why)."""
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleDict) or head not in heads or not hasattr(heads[head], "blocks"):
        raise ModelConfigError(f"Grad-CAM needs a DermImitFormer with a {head!r} head of transformer blocks")
    blocks: nn.ModuleList = heads[head].blocks  # type: ignore[assignment]
    layer = blocks[-1].norm1
    if not isinstance(layer, nn.Module):
        raise ModelConfigError(f"the {head!r} head's last block has no norm1 layer")
    return layer


@contextmanager
def _gradients_from(model: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Record autograd only from ``layer``'s output on: frozen parameters + a re-rooting hook."""

    def reroot(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output.detach().requires_grad_(True)

    with _CAM_LOCK:
        flags = [(p, p.requires_grad) for p in model.parameters()]
        handle = layer.register_forward_hook(reroot, prepend=True)  # before pytorch-grad-cam's own hooks
        try:
            for p, _ in flags:
                p.requires_grad_(False)
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            handle.remove()
            for p, flag in flags:
                p.requires_grad_(flag)


def grad_cam(
    model: nn.Module,
    batch: torch.Tensor | np.ndarray,
    head: str = "disease",
    class_index: int | list[int] | None = None,
    *,
    output: str | None = None,
    target_layer: nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM maps in [0, 1] at the model's input resolution.

    ``batch`` is preprocessed input, ``(B, 3, S, S)`` -> ``(B, S, S)`` or ``(3, S, S)`` -> ``(S, S)``.
    ``class_index`` is one class for all photos, one per photo, or None for each photo's top class
    of that head. ``output`` overrides the explained output (e.g. ``"disease"`` for the disease
    head's own d instead of the fused d').
    """
    from pytorch_grad_cam import GradCAM

    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise ModelConfigError("Grad-CAM needs a model with a ModelConfig (.cfg)")
    out_name = output or HEAD_OUTPUTS.get(head, head)
    layer = target_layer if target_layer is not None else default_target_layer(model, head)
    x = torch.as_tensor(batch).float()
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, S, S) or (3, S, S) input, got {tuple(x.shape)}")
    device = next(model.parameters()).device
    x = x.to(device)
    n_classes = int(cfg.num_classes["disease" if out_name.startswith("disease") else out_name])
    targets = None  # pytorch-grad-cam then explains each photo's top class, from the same forward pass
    if class_index is not None:
        classes = [class_index] * int(x.shape[0]) if isinstance(class_index, int) else [int(c) for c in class_index]
        if len(classes) != x.shape[0]:
            raise ValueError(f"{len(classes)} class indices for {x.shape[0]} photos")
        bad = [c for c in classes if not 0 <= c < n_classes]
        if bad:
            raise ModelConfigError(f"class index {bad[0]} is outside {out_name!r}'s {n_classes} classes")
        targets = [HeadClassTarget(head, c) for c in classes]
    wrapped = HeadLogits(model, out_name)
    was_training = model.training
    cams: np.ndarray | None = None
    try:
        with (
            _gradients_from(model, layer),
            torch.autocast(device.type, enabled=False),
            GradCAM(wrapped, [layer], reshape_transform=TokenGridReshape(cfg.grid_size, cfg.num_prefix_tokens)) as cam,
        ):
            cams = cam(x, targets)
    finally:
        model.train(was_training)
    if cams is None:  # pytorch-grad-cam's __exit__ swallows IndexError
        raise ModelConfigError(f"Grad-CAM failed for head {head!r}")
    result = np.clip(np.asarray(cams, dtype=np.float32), 0.0, 1.0)
    return result[0] if single else result

