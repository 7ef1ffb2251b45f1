"""Grad-CAM (Selvaraju et al. 2017) for any head and class of DermImitFormer and the plain CNN floors.

Two choices decide whether the map lands on the lesion; both were measured with the pointing game
against PAD-UFES-20's lesion masks (``engine.metrics.localisation``, issue 11, figures in
:func:`default_target_layer`):

- **Where** (:func:`default_target_layer`): the stem's own convolutional feature map, not the tokens
  entering a head's last attention block. Once tokens have been through self-attention they are
  mixtures of the whole photo, so "token (r, c)" no longer means "what is at (r, c)"; a CNN feature
  map still is local (one cell = one receptive field), and needs no reshape.
- **How** (``method``): HiResCAM (Draelos & Carin 2020), ``sum_k dY/dA_k ⊙ A_k``, by default.
  Grad-CAM weights each channel by its gradient *averaged over the map*, which is exact only when
  global average pooling follows the layer (then the gradient is the same at every cell, and the
  two methods give the same map: a CNN floor's Grad-CAM is unchanged). In the hybrid the layer is
  followed by position embeddings and attention, the gradient differs from cell to cell, and the
  average throws exactly that away: the map becomes the channel-weighted activations, whose peaks sit
  where TF "same" zero padding makes the EfficientNet features strongest, at the border and corners
  (on the Lite0 stem the feature norm is highest in the four corner cells, and the map's first
  principal component peaks in the outer ring of cells on 80 % of photos).
  The element-wise product keeps where the gradient is. ``method="gradcam"`` gives the classic map.

Cost: all parameters are frozen for the call and a forward hook re-roots the graph at the target
layer (its output is detached and made to require grad), so autograd only records and
back-propagates the layers after it. CAMs run in fp32 with autocast off (pytorch-grad-cam converts
to numpy, which has no bf16). A clinical-context tensor, when given, is passed to ``model(x,
context)``, so the map explains the photo-plus-context prediction the clinician sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import ModelConfigError

__all__ = [
    "CAM_METHODS",
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

CAM_METHODS = ("hirescam", "gradcam")
"""``hirescam``: element-wise gradient x activation (the default, see the module docstring);
``gradcam``: channel weights from the spatially averaged gradient (Selvaraju et al.)."""


@dataclass(frozen=True)
class TokenGridReshape:
    """pytorch-grad-cam ``reshape_transform``: ``(B, P + rows*cols, D)`` tokens -> ``(B, D, rows, cols)``.

    A ``(B, C, H, W)`` convolutional feature map is already a map and passes through unchanged, so one
    transform serves token and CNN target layers alike.
    """

    grid: tuple[int, int]
    num_prefix_tokens: int

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim == 4:
            return tokens
        gh, gw = self.grid
        if tokens.ndim != 3 or tokens.shape[1] != self.num_prefix_tokens + gh * gw:
            raise ModelConfigError(
                f"target layer gives tokens of shape {tuple(tokens.shape)}, expected (B, "
                f"{self.num_prefix_tokens} + {gh}x{gw}, D) or a (B, C, H, W) feature map"
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
    """Wraps the dict-returning model so CAM sees one output's ``(B, C)`` logits.

    ``context`` (``(B, context_dim)``, or None for photo only) is passed as ``model(x, context)``.
    """

    def __init__(self, model: nn.Module, output: str, context: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x) if self.context is None else self.model(x, self.context)
        if self.output not in out:
            raise ModelConfigError(f"the model has no output {self.output!r} (outputs: {sorted(out)})")
        logits: torch.Tensor = out[self.output]
        return logits


def _cnn_feature_map(trunk: nn.Module) -> nn.Module | None:
    """The last convolutional feature map of a timm CNN (the input of its global pooling), if it has one."""
    if isinstance(getattr(trunk, "conv_head", None), nn.Module) and isinstance(getattr(trunk, "bn2", None), nn.Module):
        bn2: nn.Module = trunk.bn2  # type: ignore[assignment]
        return bn2  # EfficientNet(-Lite): conv_head -> BN -> activation, what forward_features returns
    layer4 = getattr(trunk, "layer4", None)
    if isinstance(layer4, nn.Module):
        return layer4  # ResNet
    info = getattr(trunk, "feature_info", None)
    if info is not None:
        try:
            name = info[-1]["module"]
            last: nn.Module = trunk.get_submodule(name)
        except (IndexError, KeyError, TypeError, AttributeError):
            return None
        return last
    return None


def default_target_layer(model: nn.Module, head: str = "disease") -> nn.Module:
    """The layer whose map is the explanation, per model type (see the module docstring for why).

    - DermImitFormer on a hybrid EfficientNet-Lite stem: the last stride-16 stage of the stem that is
      not the stem's own output (:func:`_stem_feature_map`), shared by every head (the head changes the
      gradient, not the layer).
    - DermImitFormer on a ViT: ``heads[head].blocks[-1].norm1`` (no convolutional map exists; the
      tokens before the head's last attention, jacobgil's ViT recipe; not measured, no trained ViT).
    - PlainClassifier (the CNN floors): the trunk's last convolutional map, the input of its global
      pooling, where Grad-CAM is exact (and equal to HiResCAM).

    Measured, pointing game / CAM energy ratio on the 640 masked PAD-UFES-20 photos (centre prior 94.1 %):

    ======================================================  ============  ===================
    layer, method                                           Lite0 (old    Lite2 (new default,
                                                            default, in-  5-fold, each fold on
                                                            sample)       its own test photos)
    ======================================================  ============  ===================
    disease head's last block ``norm1``, Grad-CAM (before)  15.9 % 1.31   22.3 % 2.26
    same tokens, HiResCAM                                   21.6 % 1.49   --
    stem output (the projection's input), Grad-CAM          28.4 % 1.50   33.1 % 2.18
    stem output, HiResCAM                                   26.9 % 1.65   39.8 % 2.45
    first stride-16 stage (EfficientNet stage 4), HiResCAM  59.7 % 2.36   70.0 % 2.83
    last stride-16 stage before the output, HiResCAM (now)  = the above   77.8 % 3.82
    stride-4 stage, HiResCAM                                56.2 % 2.17   74.8 % 2.80
    ======================================================  ============  ===================

    (Lite0 HiResCAM rows on the tokens, on the stem output and at stride 4: every other photo, 320.) The share of
    CAM peaks in the outer ring of cells fell from 42 % to 6 % on Lite2. Explaining d instead of d',
    or the log-probability or centred logit instead of the logit, moved the Lite0 figure by < 5 points.
    """
    trunk = getattr(model, "trunk", None)
    if isinstance(trunk, nn.Module):  # PlainClassifier
        if isinstance(getattr(trunk, "blocks", None), nn.Sequential) and hasattr(trunk, "patch_embed"):
            return trunk.blocks[-1].norm1  # type: ignore[index,union-attr,no-any-return]  # a ViT classifier
        layer = _cnn_feature_map(trunk)
        if layer is None:
            raise ModelConfigError(f"no convolutional feature map found in the {type(trunk).__name__} trunk")
        return layer
    backbone = getattr(model, "backbone", None)
    stem = getattr(backbone, "stem", None)
    if isinstance(stem, nn.Sequential):
        return _stem_feature_map(stem)
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleDict) or head not in heads or not hasattr(heads[head], "blocks"):
        raise ModelConfigError(f"Grad-CAM needs a DermImitFormer with a {head!r} head of transformer blocks "
                               "or a CNN classifier")
    blocks: nn.ModuleList = heads[head].blocks  # type: ignore[assignment]
    norm1 = blocks[-1].norm1
    if not isinstance(norm1, nn.Module):
        raise ModelConfigError(f"the {head!r} head's last block has no norm1 layer")
    return norm1


_STEM_STRIDE = 16


def _stride_of(module: nn.Module) -> int:
    """The spatial stride a stem element applies: a conv's own, or an EfficientNet stage's first block's."""
    conv: Any = module
    if isinstance(module, nn.Sequential) and len(module):
        conv = getattr(module[0], "conv_dw", module[0])  # the depthwise conv carries the stage's stride
    stride = getattr(conv, "stride", 1)
    return int(stride[0] if isinstance(stride, tuple) else stride)


def _stem_feature_map(stem: nn.Sequential) -> nn.Module:
    """The last EfficientNet stage at stride 16 that is not the stem's own output (the projection's input).

    Stride 16, not the token stride: on the Lite2 default (one token per 32 px) its 16x16 map at 256 px
    points better than the 8x8 ones. Not the stem's output: when that is trained with the transformer
    (the Lite0 default fine-tunes its whole stem), it carries what the attention layers need, not what
    is where. A stem with one stride-16 stage and nothing after it (the test models) uses that stage.
    """
    total, candidates = 1, []
    for i, module in enumerate(stem):
        total *= _stride_of(module)
        if total == _STEM_STRIDE and isinstance(module, nn.Sequential):
            candidates.append(i)
    if not candidates:
        raise ModelConfigError(f"the stem has no stage at stride {_STEM_STRIDE}")
    inner = [i for i in candidates if i != len(stem) - 1]
    layer: nn.Module = stem[inner[-1] if inner else candidates[-1]]
    return layer


def _reshape_for(model: nn.Module) -> TokenGridReshape:
    """Token grid and prefix count of the tokens ``layer`` may give (CNN maps pass through)."""
    trunk = getattr(model, "trunk", None)
    patch_embed = getattr(trunk, "patch_embed", None)
    if patch_embed is not None:  # a timm ViT classifier: its own grid and prefix tokens
        grid: Any = patch_embed.grid_size
        return TokenGridReshape((int(grid[0]), int(grid[1])), int(getattr(trunk, "num_prefix_tokens", 1)))
    cfg: Any = getattr(model, "cfg", None)
    gh, gw = cfg.grid_size
    return TokenGridReshape((int(gh), int(gw)), int(cfg.num_prefix_tokens))


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
    context: torch.Tensor | np.ndarray | None = None,
    method: str = "hirescam",
) -> np.ndarray:
    """Class activation maps in [0, 1] at the model's input resolution.

    ``batch`` is preprocessed input, ``(B, 3, S, S)`` -> ``(B, S, S)`` or ``(3, S, S)`` -> ``(S, S)``.
    ``class_index`` is one class for all photos, one per photo, or None for each photo's top class
    of that head. ``output`` overrides the explained output (e.g. ``"disease"`` for the disease
    head's own d instead of the fused d'). ``context`` is the encoded clinical context,
    ``(B, context_dim)`` or ``(context_dim,)`` for all photos, passed to ``model(x, context)``.
    ``method`` is one of :data:`CAM_METHODS`; ``target_layer`` overrides :func:`default_target_layer`.
    """
    import pytorch_grad_cam

    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {CAM_METHODS}, got {method!r}")
    cam_class = pytorch_grad_cam.HiResCAM if method == "hirescam" else pytorch_grad_cam.GradCAM
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
    ctx = _context_batch(context, int(x.shape[0]), device)
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
    wrapped = HeadLogits(model, out_name, ctx)
    was_training = model.training
    cams: np.ndarray | None = None
    try:
        with (
            _gradients_from(model, layer),
            torch.autocast(device.type, enabled=False),
            cam_class(wrapped, [layer], reshape_transform=_reshape_for(model)) as cam,
        ):
            cams = cam(x, targets)
    finally:
        model.train(was_training)
    if cams is None:  # pytorch-grad-cam's __exit__ swallows IndexError
        raise ModelConfigError(f"Grad-CAM failed for head {head!r}")
    result = np.clip(np.asarray(cams, dtype=np.float32), 0.0, 1.0)
    return result[0] if single else result


def _context_batch(context: torch.Tensor | np.ndarray | None, n: int, device: torch.device) -> torch.Tensor | None:
    if context is None:
        return None
    c = torch.as_tensor(context).float().to(device)
    if c.ndim == 1:
        c = c.unsqueeze(0).expand(n, -1)
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"expected a (B, context_dim) or (context_dim,) context for {n} photos, got {tuple(c.shape)}")
    return c
