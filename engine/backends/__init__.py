"""The runtimes a :class:`~engine.inference.Predictor` can run a model on, one module per runtime.

``torch_backend`` runs the bundle's torch module; ``onnx_backend`` runs a validated DermViewer ``.onnx``
file in ONNX Runtime; ``onnx_format`` is what both the exporter (``engine.export``) and the ONNX
backend agree a DermViewer ONNX file holds. ``engine.export`` depends on this package, never the
reverse, and nothing here imports torch, onnx or onnxruntime until a backend is built.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Backend"]


class Backend(Protocol):
    """Runs a preprocessed ``(B, 3, H, W)`` float32 batch; returns the model's named outputs as numpy.

    ``context`` is the ``(B, C)`` encoded clinical context of a context model (``engine.context``);
    ``None`` means photo only (zeros, which the model treats exactly as no context).
    """

    name: str

    def run(self, batch: np.ndarray, context: np.ndarray | None = None) -> dict[str, np.ndarray]: ...
