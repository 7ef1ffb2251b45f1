"""What a DermViewer ``.onnx`` file holds, shared by the writer (``engine.export``) and the reader
(:mod:`engine.backends.onnx_backend`): the input name, the metadata keys, the outputs a model config
implies, and the two fingerprints (of the weights, and of the whole serialised model).

Integrity: ``dermviewer_sha256`` is a SHA-256 of the whole serialised model (graph, weights, opsets,
the other metadata), so a flipped weight byte that protobuf and the checker would both accept, or a
config pasted from another model, is caught on load.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from engine.models.config import ModelConfig

if TYPE_CHECKING:
    import onnx
    import torch

__all__ = [
    "CONTEXT_INPUT_NAME",
    "INPUT_NAME",
    "META_BUNDLE",
    "META_PRECISION",
    "META_SHA256",
    "META_WEIGHTS_SHA256",
    "expected_outputs",
    "model_sha256",
    "weights_sha256",
]

INPUT_NAME = "input"
CONTEXT_INPUT_NAME = "context"  # (B, C) encoded clinical context, only in graphs of context models
META_BUNDLE = "dermviewer_bundle"
META_SHA256 = "dermviewer_sha256"
META_WEIGHTS_SHA256 = "dermviewer_weights_sha256"
META_PRECISION = "dermviewer_precision"


def expected_outputs(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Output name -> (shape without the batch axis, dtype), from a forward pass on the meta device.

    The model itself is the single source of truth for which keys exist (heads, LSM, fusion).
    """
    import torch

    from engine.models.registry import build_model

    cfg = cfg.replace(pretrained=False, checkpoint_path=None)
    with torch.device("meta"), torch.no_grad():
        model = build_model(cfg).eval()
        out = model(torch.empty(1, 3, cfg.img_size, cfg.img_size))
    return {k: (tuple(v.shape[1:]), v.dtype) for k, v in out.items()}


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Fingerprint of the weights as the model runs them (fp32), independent of how they were stored."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu()
        t = t.float() if t.is_floating_point() else t
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_sha256(model: onnx.ModelProto) -> str:
    """SHA-256 of the whole serialised model except the checksum entry itself: graph, weights, opsets
    and the other metadata, so neither a flipped weight byte nor a swapped config goes unnoticed."""
    props = model.metadata_props
    idx = [i for i, p in enumerate(props) if p.key == META_SHA256]
    saved = [(props[i].key, props[i].value) for i in idx]
    for i in reversed(idx):
        del props[i]
    try:
        return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    finally:
        for key, value in saved:
            entry = props.add()
            entry.key, entry.value = key, value
