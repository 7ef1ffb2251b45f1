"""Reading DermViewer ONNX files, and the ONNX Runtime backend of :class:`~engine.inference.Predictor`.

Reading validates everything before a session is built: protobuf parses, ``onnx.checker`` passes,
the DermViewer metadata is present, the graph checksum matches (tampering), the config parses, and
the input/outputs are the ones the config's model has (a file from another model). Every failure is
an :class:`~engine.errors.ExportError` naming the file.

The ONNX cache (:mod:`engine.onnx_cache`) builds sessions with :meth:`OnnxBackend.from_trusted`
instead: its entries are checked against a checksum it wrote itself, which needs neither ``onnx`` nor torch
(``read_onnx``'s output check builds the model on torch's meta device). Nothing here imports torch at
module level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.onnx_format import (
    CONTEXT_INPUT_NAME,
    INPUT_NAME,
    META_BUNDLE,
    META_PRECISION,
    META_SHA256,
    META_WEIGHTS_SHA256,
    expected_outputs,
    model_sha256,
    weights_sha256,
)
from engine.bundle import Bundle
from engine.bundle import bundle_from_header as _bundle_from_header
from engine.errors import ExportError
from engine.models.config import BUILD_ERRORS

__all__ = ["OnnxBackend", "OnnxFile", "bundle_from_header", "read_onnx"]

_DTYPES = {"torch.float32": 1, "torch.int64": 7}  # onnx.TensorProto.FLOAT / INT64, by torch dtype name


@dataclass
class OnnxFile:
    """A validated DermViewer ONNX model: its bytes, the bundle it describes (no weights) and metadata."""

    blob: bytes
    bundle: Bundle
    output_names: list[str]
    precision: str
    weights_sha256: str
    path: Path | None


def bundle_from_header(header: dict[str, Any], path: Path | None = None) -> Bundle:
    """Rebuild a weightless :class:`Bundle` (config, preprocessing, taxonomy, thresholds) from a header."""
    return _bundle_from_header(header, {}, path, error=ExportError)


def read_onnx(source: str | Path | bytes) -> OnnxFile:
    """Parse and validate a DermViewer ONNX model from a path or bytes."""
    import onnx
    from google.protobuf.message import DecodeError

    path: Path | None = None
    if isinstance(source, bytes):
        blob = source
    else:
        path = Path(source)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ExportError(f"cannot read: {exc.strerror or exc}", path) from exc
    if not blob:
        raise ExportError("file is empty", path)
    try:
        model = onnx.load_model_from_string(blob)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ExportError(f"not an ONNX model or corrupted ({exc.__class__.__name__})", path) from exc
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ExportError(f"not a valid ONNX model (truncated or corrupted?): {first}", path) from exc
    try:  # protobuf checks a string field's UTF-8 only when it is read or written back
        meta = {p.key: p.value for p in model.metadata_props}
        missing = [k for k in (META_BUNDLE, META_SHA256) if k not in meta]
        if missing:
            raise ExportError(f"no DermViewer metadata ({', '.join(missing)}): not from DermViewer, or stripped",
                              path)
        checksum = model_sha256(model)
    except UnicodeError as exc:
        raise ExportError("metadata is not valid UTF-8 text: the file was modified or corrupted", path) from exc
    if checksum != meta[META_SHA256]:
        raise ExportError("checksum mismatch: the file was modified or corrupted", path)
    try:
        header = json.loads(meta[META_BUNDLE])
    except json.JSONDecodeError as exc:
        raise ExportError("embedded bundle config is not valid JSON", path) from exc
    if not isinstance(header, dict):
        raise ExportError("embedded bundle config is not a JSON object", path)
    bundle = bundle_from_header(header, path)
    names = _check_signature(model, bundle, path)
    return OnnxFile(blob, bundle, names, meta.get(META_PRECISION, "fp32"), meta.get(META_WEIGHTS_SHA256, ""), path)


def _check_signature(model: Any, bundle: Bundle, path: Path | None) -> list[str]:
    cfg = bundle.model_config
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    want_names = [INPUT_NAME] + ([CONTEXT_INPUT_NAME] if bundle.model_config.context_fields else [])
    if [i.name for i in inputs] != want_names:
        raise ExportError(f"expected inputs {want_names}, found {[i.name for i in inputs]}", path)
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inputs[0].type.tensor_type.shape.dim]
    want = [-1, 3, cfg.img_size, cfg.img_size]
    if dims != want or bundle.preprocess.img_size != cfg.img_size:
        raise ExportError(f"input shape {dims} does not match the embedded config ({want}, batch dynamic)", path)
    try:
        expected = expected_outputs(cfg)
    except BUILD_ERRORS as exc:
        raise ExportError(f"the embedded config does not describe a model that can be built: {exc!r:.300}",
                          path) from exc
    got = {o.name: o for o in model.graph.output}
    if set(got) != set(expected):
        raise ExportError(f"outputs {sorted(got)} do not match the embedded config's model {sorted(expected)}", path)
    for name, (shape, dtype) in expected.items():
        t = got[name].type.tensor_type
        out_dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        fits = len(out_dims) == 1 + len(shape) and all(g in (-1, w) for g, w in zip(out_dims[1:], shape, strict=False))
        if t.elem_type != _DTYPES.get(str(dtype)) or not fits or out_dims[0] != -1:
            raise ExportError(f"output {name!r} is {out_dims} (type {t.elem_type}), expected [batch, *{list(shape)}]",
                              path)
    return [o.name for o in model.graph.output]


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as st

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented",
             "RuntimeException", "EPFail")
    return (*(getattr(st, n) for n in names if hasattr(st, n)), RuntimeError)


def _providers(device: Any) -> list[str]:
    """``device`` is "auto", "cpu", "cuda[:n]" or a ``torch.device`` (its ``str`` is the same)."""
    import onnxruntime as ort

    kind = str(device).split(":")[0]
    available = ort.get_available_providers()
    if kind in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxBackend:
    """ONNX Runtime session over a validated DermViewer ONNX model; ``run`` returns the torch model's dict."""

    name = "onnx"

    def __init__(self, source: str | Path | bytes | OnnxFile, device: Any = "cpu",
                 intra_op_threads: int = 0, optimize: bool = True) -> None:
        """``optimize=False`` skips ONNX Runtime's graph optimiser, for a graph it has already optimised."""
        import onnxruntime as ort

        owned = not isinstance(source, OnnxFile)
        self.file = read_onnx(source) if not isinstance(source, OnnxFile) else source
        self.bundle = self.file.bundle
        opts = ort.SessionOptions()
        opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                         else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.file.blob, sess_options=opts, providers=_providers(device))
        except _ort_errors() as exc:
            raise ExportError(f"ONNX Runtime cannot load the model: {exc}", self.file.path) from exc
        if owned:
            self.file.blob = b""  # the session holds its own copy; don't keep a second one (400 MB for ViT-B)
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.output_names = self.file.output_names
        self.img_size = self.bundle.model_config.img_size

    @classmethod
    def from_bundle_file(cls, bundle: Bundle, device: Any = "cpu",
                         intra_op_threads: int = 0) -> OnnxBackend | None:
        """The ONNX model stored with ``bundle``: the bundle itself if it is an ``.onnx`` file, else an
        ``.onnx`` next to the bundle file, which must come from the same weights and config (a stale one
        raises :class:`ExportError` rather than running other weights); ``None`` when there is no such file.
        Exporting a bundle that has none is ``engine.export``'s job, not the runtime's."""
        if bundle.path is None:
            return None
        if bundle.path.suffix == ".onnx":
            return cls(bundle.path, device, intra_op_threads)
        sibling = bundle.path.with_suffix(".onnx")
        if not sibling.is_file():
            return None
        backend = cls(sibling, device, intra_op_threads)
        if bundle.state_dict and backend.file.weights_sha256 != weights_sha256(bundle.state_dict):
            raise ExportError(f"was exported from other weights than {bundle.path.name}: re-export it or delete it",
                              sibling)
        if backend.bundle.model_config != bundle.model_config:
            raise ExportError(f"its model config differs from {bundle.path.name}'s: re-export it", sibling)
        return backend

    @classmethod
    def from_trusted(cls, blob: bytes, bundle: Bundle, device: Any = "cpu", intra_op_threads: int = 0,
                     path: Path | None = None, cpu_optimized: bytes | None = None) -> OnnxBackend:
        """A session over ``blob`` whose integrity the caller has checked (the ONNX cache's own checksum),
        for ``bundle``'s config. Only the inputs are checked here; the outputs are the graph's own.
        ``cpu_optimized``: the same graph already optimised for the CPU, used when the session runs there."""
        on_cpu = _providers(device) == ["CPUExecutionProvider"]
        source = cpu_optimized if cpu_optimized and on_cpu else blob
        self = cls(OnnxFile(source, bundle, [], "fp32", "", path), device, intra_op_threads,
                   optimize=source is blob)
        self.file.blob = b""
        want = [INPUT_NAME] + ([CONTEXT_INPUT_NAME] if bundle.model_config.context_fields else [])
        got = [i.name for i in self.session.get_inputs()]
        if got != want:
            raise ExportError(f"expected inputs {want}, found {got}", path)
        self.output_names = self.file.output_names = [o.name for o in self.session.get_outputs()]
        return self

    def run(self, batch: np.ndarray, context: np.ndarray | None = None) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(f"expected a (B, 3, {self.img_size}, {self.img_size}) batch, got {x.shape}")
        feeds = {INPUT_NAME: x}
        enc = self.bundle.model_config.context_encoding()
        if enc is not None:  # a context model's graph always takes the context; zeros = photo only
            c = np.zeros((len(x), enc.dim), np.float32) if context is None else context
            feeds[CONTEXT_INPUT_NAME] = np.ascontiguousarray(c, dtype=np.float32)
        values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))
