"""ONNX export of DermImitFormer bundles, parity checks, int8 quantisation and fused attention.

The ONNX Runtime backend and the file reader live in :mod:`engine.backends.onnx_backend` (re-exported
here); this package depends on them, never the reverse. A predictor for an ``.onnx`` file alone is
:func:`engine.inference.onnx_predictor`. onnx and onnxruntime are imported only inside the functions
that need them.
"""

from engine.backends.onnx_backend import OnnxBackend, OnnxFile, bundle_from_header, read_onnx
from engine.export.fuse import (
    FUSED_INT8_PRECISION,
    FUSED_PRECISION,
    FusionReport,
    optimize_attention,
    quantize_fused_int8,
)
from engine.export.onnx_export import (
    DEFAULT_OPSET,
    INPUT_NAME,
    META_BUNDLE,
    expected_outputs,
    export_onnx,
    export_onnx_bytes,
    weights_sha256,
)
from engine.export.parity import ParityReport, check_parity, probabilities, top1_agreement
from engine.export.quantize import INT8_PRECISION, QuantizationReport, quantize_int8

__all__ = [
    "DEFAULT_OPSET",
    "FUSED_INT8_PRECISION",
    "FUSED_PRECISION",
    "INPUT_NAME",
    "INT8_PRECISION",
    "META_BUNDLE",
    "FusionReport",
    "OnnxBackend",
    "OnnxFile",
    "ParityReport",
    "QuantizationReport",
    "bundle_from_header",
    "check_parity",
    "expected_outputs",
    "export_onnx",
    "export_onnx_bytes",
    "optimize_attention",
    "probabilities",
    "quantize_fused_int8",
    "quantize_int8",
    "read_onnx",
    "top1_agreement",
    "weights_sha256",
]
