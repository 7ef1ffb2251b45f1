"""Optional int8 dynamic quantisation of a DermViewer ONNX model, with its measured top-1 agreement.

Only ``MatMul`` nodes with constant weights are quantised (``op_types_to_quantize=["MatMul"]``,
``MatMulConstBOnly``): on this CPU (VNNI, no AMX) ORT's dynamic int8 convolutions are 6-16x slower
than fp32, so the EfficientNet stem stays fp32, and attention's activation-by-activation matmuls
(whose softmax probabilities feed the LSM) are left alone too. Agreement is measured, never assumed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.onnx_backend import OnnxBackend, read_onnx
from engine.errors import ExportError
from engine.export.onnx_export import META_WEIGHTS_SHA256, stamp_metadata, write_atomically
from engine.export.parity import preprocessed_batches, probabilities, run_all, top1_agreement

__all__ = ["INT8_PRECISION", "QuantizationReport", "quantize_int8"]


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)

INT8_PRECISION = "int8-dynamic-matmul"


@dataclass
class QuantizationReport:
    path: Path
    quantized_matmuls: int
    n_images: int = 0
    top1_agreement: float | None = None
    max_prob_diff: float | None = None

    def summary(self) -> str:
        if self.top1_agreement is None:
            return f"{self.path.name}: {self.quantized_matmuls} MatMuls int8 (agreement not measured)"
        return (f"{self.path.name}: {self.quantized_matmuls} MatMuls int8, top-1 agreement with fp32 "
                f"{self.top1_agreement:.1%} on {self.n_images} photos, max |Δp| {self.max_prob_diff:.3f}")


def quantize_int8(
    src: str | Path | bytes,
    dst: str | Path,
    images: Sequence[np.ndarray | str | Path] | None = None,
    batch_size: int = 8,
) -> QuantizationReport:
    """Write an int8 (MatMul weights) copy of the fp32 DermViewer ONNX model ``src`` to ``dst``.

    With ``images``, the disease top-1 agreement (d') between the fp32 and int8 models is measured.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = read_onnx(src)
    if fp32.precision != "fp32":
        raise ExportError(f"can only quantise an fp32 model, this one is {fp32.precision}", fp32.path)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="dermviewer-q-") as tmp:
        f_in, f_out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        f_in.write_bytes(fp32.blob)
        with _quiet_root_logger():  # ORT logs a pre-processing hint through the root logger
            quantize_dynamic(
                f_in, f_out, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8, per_channel=False,
                extra_options={"MatMulConstBOnly": True},
            )
        model = onnx.load(str(f_out))
    n_q = sum(1 for n in model.graph.node if n.op_type == "MatMulInteger")
    meta = {p.key: p.value for p in model.metadata_props}
    stamp_metadata(model, fp32.bundle.header(), meta.get(META_WEIGHTS_SHA256, fp32.weights_sha256), INT8_PRECISION)
    write_atomically(model.SerializeToString(), dst)
    report = QuantizationReport(dst, n_q)
    if images:
        batches = preprocessed_batches(images, fp32.bundle, batch_size)
        ref = run_all(OnnxBackend(fp32, "cpu").run, batches)
        got = run_all(OnnxBackend(dst, "cpu").run, batches)
        p_ref, p_got = probabilities(ref, fp32.bundle.taxonomy), probabilities(got, fp32.bundle.taxonomy)
        report.n_images = len(images)
        report.top1_agreement = top1_agreement(ref, got)
        report.max_prob_diff = float(np.abs(p_ref["disease_fused"] - p_got["disease_fused"]).max())
    return report
