"""Fused attention for DermViewer ONNX graphs (ONNX Runtime's ``com.microsoft.Attention``), and its int8 copy.

:func:`optimize_attention` rewrites a fp32 DermViewer graph in two passes:

1. **Packed-QKV attention -> ``Attention``.** ONNX Runtime's transformer optimizer
   (``onnxruntime.transformers.optimizer.optimize_model``, ``model_type="vit"``) fuses attention only
   when Q, K and V come from three separate ``MatMul`` nodes (Hugging Face's ViT layout). This
   project's blocks (timm's layout, :mod:`engine.models.blocks`) project Q, K and V with one packed
   ``qkv`` Linear and the exporter writes ``scaled_dot_product_attention`` as ``Mul(sqrt(scale))`` on Q
   and Kᵀ, so the optimizer's matcher fuses none of them (measured: 0 ``Attention`` nodes on a ViT
   DermImitFormer). This module matches that exported pattern itself::

       MatMul(x, W[D, 3D]) -> Add(b) -> Reshape(B, N, 3, H, hd) -> Transpose(2, 0, 3, 1, 4)
         -> Split / Squeeze (q, k, v) -> MatMul(q·s, (kᵀ)·s) -> Softmax -> MatMul(·, v)
         -> Transpose(0, 2, 1, 3) -> Reshape(B, N, D)

   and replaces it with one ``Attention(x, W, b)`` (``num_heads=H``; ``W``'s columns are already
   ``[Q | K | V]`` with heads contiguous, the operator's layout). A block is fused only when its
   softmax output has no consumer besides the ``AV`` product: the attention probabilities of the
   LSM heads' blocks (disease and attributes heads: the Lesion Selection Module reads their class
   token's row and column) are graph values the fused operator cannot expose, so those blocks keep
   their explicit attention and the LSM scores and token indices keep their meaning exactly.
2. **ONNX Runtime's optimizer** for what it does match: ``LayerNormalization``, ``SkipLayerNormalization``
   (residual add + LayerNorm), ``BiasGelu``. Its ``get_fused_operator_statistics()`` is reported.

:func:`quantize_fused_int8` then quantises the weights of ``MatMul`` *and* fused ``Attention`` nodes
(dynamic int8, ``QAttention``); activation-by-activation matmuls (the unfused LSM blocks' QKᵀ and AV)
stay fp32, as in :func:`engine.export.quantize.quantize_int8`. Agreement with the fp32 graph is measured
on photos when given, never assumed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.backends.onnx_backend import OnnxFile, read_onnx
from engine.errors import ExportError
from engine.export.onnx_export import META_WEIGHTS_SHA256, stamp_metadata, write_atomically
from engine.export.parity import preprocessed_batches, probabilities, run_all, top1_agreement

if TYPE_CHECKING:
    import onnx

__all__ = [
    "FUSED_INT8_PRECISION",
    "FUSED_PRECISION",
    "FusionReport",
    "fuse_packed_attention",
    "optimize_attention",
    "quantize_fused_int8",
]

FUSED_PRECISION = "fp32-fused-attention"
FUSED_INT8_PRECISION = "int8-dynamic-matmul-attention"
MS_DOMAIN = "com.microsoft"


@dataclass
class FusionReport:
    """What a rewrite did: fused-operator counts, the blocks it left unfused and, with photos, its agreement."""

    path: Path
    precision: str
    attention_fused: int
    attention_unfused: int
    fused_operators: dict[str, int] = field(default_factory=dict)
    fused_blocks: list[str] = field(default_factory=list)
    unfused_blocks: list[str] = field(default_factory=list)
    quantized: dict[str, int] = field(default_factory=dict)
    n_images: int = 0
    top1_agreement: float | None = None
    max_prob_diff: float | None = None
    selected_agreement: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in self.fused_operators.items() if v)
        q = ", ".join(f"{v} {k}" for k, v in self.quantized.items() if v)
        text = (f"{self.path.name}: {self.attention_fused} Attention fused, {self.attention_unfused} attentions "
                f"left explicit (their probabilities feed the LSM, or no pattern matched)"
                + (f"; fused ops: {ops}" if ops else "") + (f"; int8: {q}" if q else ""))
        if self.top1_agreement is not None:
            sel = ", ".join(f"{k} {v:.1%}" for k, v in self.selected_agreement.items())
            text += (f"; top-1 agreement with fp32 {self.top1_agreement:.1%} on {self.n_images} photos, "
                     f"max |Δp| {self.max_prob_diff:.2e}" + (f", same LSM tokens {sel}" if sel else ""))
        return text


@contextmanager
def _quiet_loggers() -> Iterator[None]:
    """ORT's optimizer warns that the producer is not "pytorch" and its quantizer logs pre-processing hints."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime"), logging.getLogger("onnxruntime.transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --- pass 1: packed-QKV attention -> com.microsoft.Attention ---------------------------------------

class _Graph:
    """Producer / consumer / constant lookups over an ONNX graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        self.producer: dict[str, Any] = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inits = {t.name: t for t in g.initializer}
        self.outputs = {o.name for o in g.output}
        self._np = numpy_helper

    def parent(self, node: Any, index: int, op_type: str) -> Any | None:
        if index >= len(node.input):
            return None
        p = self.producer.get(node.input[index])
        return p if p is not None and p.op_type == op_type else None

    def only_consumer(self, value: str) -> Any | None:
        users = self.consumers.get(value, [])
        return users[0] if len(users) == 1 and value not in self.outputs else None

    def init(self, value: str) -> str | None:
        """The initializer ``value`` is, through the exporter's ``Identity`` aliases of equal tensors."""
        for _ in range(8):
            if value in self.inits:
                return value
            p = self.producer.get(value)
            if p is None or p.op_type != "Identity":
                return None
            value = p.input[0]
        return None

    def const(self, value: str) -> np.ndarray | None:
        value = self.init(value) or value
        if value in self.inits:
            return np.asarray(self._np.to_array(self.inits[value]))
        p = self.producer.get(value)
        if p is not None and p.op_type == "Constant":
            for a in p.attribute:
                if a.name == "value":
                    return np.asarray(self._np.to_array(a.t))
        return None


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _block_name(node: Any) -> str:
    """``/model/backbone/blocks.0/attn/Softmax`` -> ``backbone.blocks.0``."""
    parts = [p for p in node.name.split("/") if p and p != "model"]
    if parts and parts[-1].startswith("Softmax"):
        parts = parts[:-1]
    if parts and parts[-1] == "attn":
        parts = parts[:-1]
    return ".".join(parts) or node.name or "?"


def _scale_side(g: _Graph, value: str) -> tuple[str, float | None, bool] | None:
    """``value`` = ``t`` or ``Mul(t, c)``: (t, c or None, whether c is SDPA's ``sqrt(1/sqrt(hd))`` of ``t``)."""
    mul = g.producer.get(value)
    if mul is None or mul.op_type != "Mul":
        return value, None, False
    for i in (0, 1):
        other = mul.input[1 - i]
        c = g.const(other)
        if c is not None and c.size == 1:
            return mul.input[i], float(c.reshape(-1)[0]), False
        sq = g.producer.get(other)
        if sq is not None and sq.op_type == "Sqrt" and _is_sdpa_scale(g, sq.input[0]):
            return mul.input[i], None, True
    return None


def _is_sdpa_scale(g: _Graph, value: str) -> bool:
    """``Cast(Div(1, Sqrt(Cast(Slice(Shape(q), -1)))))``: torch's default SDPA scale, 1/sqrt(head_dim)."""
    node = g.producer.get(value)
    if node is not None and node.op_type == "Cast":
        node = g.producer.get(node.input[0])
    if node is None or node.op_type != "Div":
        return False
    one = g.const(node.input[0])
    if one is None or one.size != 1 or float(one.reshape(-1)[0]) != 1.0:
        return False
    sq = g.producer.get(node.input[1])
    return sq is not None and sq.op_type == "Sqrt"


def _split_source(g: _Graph, value: str) -> tuple[Any, int] | None:
    """``value`` = ``Squeeze(Split(T)[i], 0)`` or ``Gather(T, i, axis=0)``: (the Transpose T, i)."""
    node = g.producer.get(value)
    if node is None:
        return None
    if node.op_type == "Squeeze":
        split = g.producer.get(node.input[0])
        if split is None or split.op_type != "Split" or _attr(split, "axis", 0) != 0:
            return None
        t = g.producer.get(split.input[0])
        return (t, list(split.output).index(node.input[0])) if t is not None else None
    if node.op_type == "Gather" and _attr(node, "axis", 0) == 0:
        idx = g.const(node.input[1])
        t = g.producer.get(node.input[0])
        return (t, int(idx.reshape(-1)[0])) if t is not None and idx is not None and idx.size == 1 else None
    return None


@dataclass
class _Match:
    block: str
    x: str
    weight: str
    bias: str | None
    num_heads: int
    scale: float | None
    out: Any  # the final Reshape, whose output the Attention node takes over


def _match(g: _Graph, softmax: Any, hidden_size: int | None) -> _Match | str:
    """The packed-QKV attention ending at ``softmax``, or why it is not one (a reason string)."""
    av = g.only_consumer(softmax.output[0])
    if av is None or av.op_type != "MatMul" or av.input[0] != softmax.output[0]:
        return "softmax output read elsewhere (LSM)"
    if _attr(softmax, "axis", -1) not in (-1, 3):
        return "softmax not over the last axis"
    qk = g.parent(softmax, 0, "MatMul")
    if qk is None or g.only_consumer(qk.output[0]) is not softmax:
        return "QKᵀ scaled after the product: not a packed-QKV self-attention (CIM's cross-attention)"
    q_side, kt_side = _scale_side(g, qk.input[0]), _scale_side(g, qk.input[1])
    if q_side is None or kt_side is None:
        return "unknown scaling"
    q, q_c, q_sdpa = q_side
    kt, k_c, k_sdpa = kt_side
    kt_node = g.producer.get(kt)
    if kt_node is None or kt_node.op_type != "Transpose" or list(_attr(kt_node, "perm", [])) != [0, 1, 3, 2]:
        return "K is not transposed as expected"
    srcs = [_split_source(g, q), _split_source(g, kt_node.input[0]), _split_source(g, av.input[1])]
    if any(s is None for s in srcs):
        return "Q, K, V do not come from one packed projection"
    ts = {id(s[0]) for s in srcs if s is not None}
    if len(ts) != 1 or [s[1] for s in srcs if s is not None] != [0, 1, 2]:
        return "Q, K, V do not come from one packed projection"
    t = srcs[0][0] if srcs[0] is not None else None
    if t is None or t.op_type != "Transpose" or list(_attr(t, "perm", [])) != [2, 0, 3, 1, 4]:
        return "packed QKV not permuted (2, 0, 3, 1, 4)"
    reshape = g.parent(t, 0, "Reshape")
    if reshape is None:
        return "no packed-QKV Reshape"
    shape = _concat_tail(g, reshape.input[1])
    if shape is None or len(shape) != 3 or shape[0] != 3:
        return "packed-QKV Reshape is not (B, N, 3, H, hd)"
    heads, head_dim = shape[1], shape[2]
    proj = g.producer.get(reshape.input[0])
    bias = None
    if proj is not None and proj.op_type == "Add":
        for i in (0, 1):
            if (b_name := g.init(proj.input[i])) is not None and (mm := g.parent(proj, 1 - i, "MatMul")) is not None:
                bias, proj = b_name, mm
                break
        else:
            return "qkv bias is not a constant"
    w_name = g.init(proj.input[1]) if proj is not None and proj.op_type == "MatMul" else None
    if proj is None or w_name is None:
        return "qkv projection is not a MatMul with constant weights"
    w = g.inits[w_name]
    d = heads * head_dim
    if list(w.dims) != [d, 3 * d] or (hidden_size and d != hidden_size):
        return f"qkv weight {list(w.dims)} is not ({d}, {3 * d})"
    if bias is not None and list(g.inits[bias].dims) != [3 * d]:
        return "qkv bias is not (3D,)"
    tr = g.only_consumer(av.output[0])
    if tr is None or tr.op_type != "Transpose" or list(_attr(tr, "perm", [])) != [0, 2, 1, 3]:
        return "attention output not transposed back"
    out = g.only_consumer(tr.output[0])
    if out is None or out.op_type != "Reshape":
        return "attention output not merged by a Reshape"
    if not _merges_heads(g, out.input[1], d):
        return "attention output Reshape is not (B, N, D)"
    default = head_dim**-0.5
    if q_sdpa and k_sdpa:
        scale: float | None = None
    elif not q_sdpa and not k_sdpa:
        scale = (1.0 if q_c is None else q_c) * (1.0 if k_c is None else k_c)
        scale = None if abs(scale - default) <= 1e-6 * default else scale
    else:
        return "mixed scaling"
    return _Match(_block_name(softmax), proj.input[0], w_name, bias, heads, scale, out)


def _merges_heads(g: _Graph, value: str, d: int) -> bool:
    """A rank-3 Reshape target whose last dim is ``d`` (a constant) or ``x.shape[2]`` (read at run time;
    the element count then forces it to be ``d``)."""
    c = g.const(value)
    if c is not None:
        return c.size == 3 and int(c.reshape(-1)[-1]) in (d, -1)
    node = g.producer.get(value)
    if node is None or node.op_type != "Concat" or len(node.input) != 3:
        return False
    parts = [g.const(i) for i in node.input]
    if any(p is not None and p.size != 1 for p in parts):
        return False
    last = parts[-1]
    return last is None or int(last.reshape(-1)[0]) in (d, -1)


def _concat_tail(g: _Graph, value: str) -> list[int] | None:
    """The constant trailing dims of a Reshape target: an initializer, or a Concat whose last inputs are constants."""
    c = g.const(value)
    if c is not None:
        return [int(v) for v in c.reshape(-1)[2:]]
    node = g.producer.get(value)
    if node is None or node.op_type != "Concat":
        return None
    tail: list[int] = []
    for i in reversed(node.input):
        v = g.const(i)
        if v is None:
            break
        tail = [int(x) for x in v.reshape(-1)] + tail
    return tail


def _is_attention_softmax(g: _Graph, softmax: Any) -> bool:
    """Softmax over ``Q Kᵀ`` (possibly scaled by a Div / Mul): an attention, fused or not."""
    node = g.producer.get(softmax.input[0])
    if node is not None and node.op_type in ("Div", "Mul"):
        node = g.producer.get(node.input[0])
    return node is not None and node.op_type == "MatMul"


def _prune(model: onnx.ModelProto) -> None:
    """Drop nodes none of whose outputs reach a graph output, then the initializers no node reads."""
    g = model.graph
    live = {o.name for o in g.output}
    keep = []
    for node in reversed(g.node):
        if any(o in live for o in node.output):
            keep.append(node)
            live.update(i for i in node.input if i)
    keep.reverse()
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
    used = [t for t in g.initializer if t.name in live]
    if len(used) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(used)


def fuse_packed_attention(model: onnx.ModelProto, hidden_size: int | None = None) -> tuple[list[str], list[str]]:
    """Pass 1 in place: replace every fusable packed-QKV attention by ``com.microsoft.Attention``.

    Returns (fused block names, "block: reason" for every softmax attention left as it is).
    """
    from onnx import helper, numpy_helper

    g = _Graph(model)
    fused: list[str] = []
    unfused: list[str] = []
    matches: list[_Match] = []
    for node in list(model.graph.node):
        if node.op_type != "Softmax" or not _is_attention_softmax(g, node):
            continue  # e.g. the LSM's re-normalisation of a class-token row / column
        m = _match(g, node, hidden_size)
        if isinstance(m, str):
            unfused.append(f"{_block_name(node)}: {m}")
        else:
            matches.append(m)
    if not matches:
        return fused, unfused
    position = {id(n): i for i, n in enumerate(model.graph.node)}
    replaced: dict[int, Any] = {}
    for k, m in enumerate(matches):
        bias = m.bias
        if bias is None:
            d3 = g.inits[m.weight].dims[1]
            bias = f"attention_fused_{k}_zero_bias"
            model.graph.initializer.append(numpy_helper.from_array(np.zeros(d3, np.float32), bias))
        attrs: dict[str, Any] = {"num_heads": m.num_heads}
        if m.scale is not None:
            attrs["scale"] = m.scale
        new = helper.make_node("Attention", [m.x, m.weight, bias], [m.out.output[0]],
                               name=f"Attention_{m.block}", domain=MS_DOMAIN, **attrs)
        replaced[position[id(m.out)]] = new
        fused.append(m.block)
    nodes = [replaced.get(i, n) for i, n in enumerate(model.graph.node)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _add_ms_opset(model)
    _prune(model)
    return fused, unfused


def _add_ms_opset(model: onnx.ModelProto) -> None:
    from onnx import helper

    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


# --- the public functions --------------------------------------------------------------------------

def _read_fp32(src: str | Path | bytes | OnnxFile) -> OnnxFile:
    f = src if isinstance(src, OnnxFile) else read_onnx(src)
    if f.precision != "fp32":
        raise ExportError(f"can only fuse an fp32 model, this one is {f.precision}", f.path)
    return f


def _ort_errors() -> tuple[type[BaseException], ...]:
    from engine.backends.onnx_backend import _ort_errors as errors

    return errors()


def optimize_attention(
    src: str | Path | bytes | OnnxFile,
    dst: str | Path,
    *,
    num_heads: int | None = None,
    hidden_size: int | None = None,
    opt_level: int = 0,
    skip_layer_norm: bool = False,
    bias_gelu: bool = False,
    images: Sequence[np.ndarray | str | Path] | None = None,
    batch_size: int = 8,
) -> FusionReport:
    """Write ``src`` (a fp32 DermViewer ONNX model) with fused attention to ``dst``; see the module docstring.

    ``num_heads`` / ``hidden_size`` default to the embedded config's (``hidden_size`` is checked against each
    fused block's weights; each block's head count is read from its own Reshape). ``opt_level`` is passed to
    ``optimize_model``: 0 (Python fusions only, no ORT-specific rewrites saved) measured no slower than 1 or 2
    on the paper configuration (the session applies ORT's own optimisations at load anyway).
    ``skip_layer_norm`` / ``bias_gelu`` enable those two fusions of the optimizer: off by default, since
    ``SkipLayerNormalization`` measured ~2.4 ms per call on ViT-B/16 at 384 px against ~0.2 ms for the
    ``Add`` + ``LayerNormalization`` it replaces (ORT 1.31, this CPU), and ``BiasGelu`` takes the bias out
    of the ``MatMul`` it would otherwise be quantised with; with both on, the fused int8 graph was ~60 ms slower.
    With ``images`` the disease top-1 agreement and LSM token agreement with ``src`` are measured.
    Raises :class:`ExportError` naming the file on any failure.
    """
    import onnx

    fp32 = _read_fp32(src)
    cfg = fp32.bundle.model_config
    heads = num_heads or cfg.num_heads
    hidden = hidden_size or cfg.embed_dim
    dst = Path(dst)
    where = fp32.path or dst
    model = onnx.load_model_from_string(fp32.blob)
    try:
        fused, unfused = fuse_packed_attention(model, hidden)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ExportError(f"attention fusion failed: {exc!r:.300}", where) from exc
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:
        raise ExportError(f"onnxruntime.transformers is not importable: {exc}", where) from exc
    errors: tuple[type[BaseException], ...] = (*_ort_errors(), ValueError, KeyError, IndexError, TypeError,
                                               AssertionError, OSError)
    try:
        with _quiet_loggers():
            options = FusionOptions("vit")
            options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = skip_layer_norm
            options.enable_bias_gelu = bias_gelu
            opt = optimize_model(model, model_type="vit", num_heads=heads, hidden_size=hidden,
                                 optimization_options=options, opt_level=opt_level, use_gpu=False)
            stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items()}
    except errors as exc:
        raise ExportError(f"ONNX Runtime's transformer optimizer failed: {exc!r:.300}", where) from exc
    out = opt.model
    _add_ms_opset(out)  # the optimizer's SkipLayerNormalization / BiasGelu are com.microsoft ops too
    got = [o.name for o in out.graph.output]
    if got != fp32.output_names:
        raise ExportError(f"fusion changed the outputs: {got} instead of {fp32.output_names}", where)
    try:
        onnx.checker.check_model(out)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ExportError(f"the fused graph fails onnx.checker: {exc}", where) from exc
    out.producer_name = "dermviewer"
    meta = {p.key: p.value for p in out.metadata_props}
    stamp_metadata(out, fp32.bundle.header(), meta.get(META_WEIGHTS_SHA256, fp32.weights_sha256), FUSED_PRECISION)
    write_atomically(out.SerializeToString(), dst)
    n_attn = sum(1 for n in out.graph.node if n.op_type == "Attention")
    report = FusionReport(dst, FUSED_PRECISION, n_attn, len(unfused), stats, fused, unfused)
    if images:
        _measure(report, fp32, images, batch_size)
    return report


def quantize_fused_int8(
    src: str | Path | bytes | OnnxFile,
    dst: str | Path,
    *,
    op_types: Sequence[str] = ("MatMul", "Attention"),
    reference: str | Path | bytes | OnnxFile | None = None,
    images: Sequence[np.ndarray | str | Path] | None = None,
    batch_size: int = 8,
) -> FusionReport:
    """Dynamic int8 of the constant weights of ``op_types`` in a fused graph (``Attention`` -> ``QAttention``).

    ``reference`` (the unfused fp32 graph; default: ``src`` itself) is what the agreement on ``images``
    is measured against.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    f = src if isinstance(src, OnnxFile) else read_onnx(src)
    if f.precision != FUSED_PRECISION:
        raise ExportError(f"expected a graph from optimize_attention ({FUSED_PRECISION}), this one is {f.precision}",
                          f.path)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="dermviewer-fq-") as tmp:
        f_in, f_out = Path(tmp) / "fused.onnx", Path(tmp) / "int8.onnx"
        f_in.write_bytes(f.blob)
        errors: tuple[type[BaseException], ...] = (*_ort_errors(), ValueError, KeyError, IndexError, TypeError,
                                                   AssertionError)
        try:
            with _quiet_loggers():
                quantize_dynamic(f_in, f_out, op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8,
                                 per_channel=False, extra_options={
                                     "MatMulConstBOnly": True,
                                     # shape inference knows no com.microsoft op: their outputs are float
                                     "DefaultTensorType": onnx.TensorProto.FLOAT})
        except errors as exc:
            raise ExportError(f"int8 quantisation of the fused graph failed: {exc!r:.300}", f.path or dst) from exc
        model = onnx.load(str(f_out))
    counts = {op: sum(1 for n in model.graph.node if n.op_type == op)
              for op in ("QAttention", "MatMulInteger", "DynamicQuantizeMatMul", "Attention", "MatMul")}
    meta = {p.key: p.value for p in model.metadata_props}
    stamp_metadata(model, f.bundle.header(), meta.get(META_WEIGHTS_SHA256, f.weights_sha256), FUSED_INT8_PRECISION)
    write_atomically(model.SerializeToString(), dst)
    g = _Graph(model)
    explicit = sum(1 for n in model.graph.node if n.op_type == "Softmax" and _is_attention_softmax(g, n))
    report = FusionReport(dst, FUSED_INT8_PRECISION, counts["QAttention"] + counts["Attention"], explicit,
                          quantized={"QAttention": counts["QAttention"],
                                     "MatMulInteger": counts["MatMulInteger"] + counts["DynamicQuantizeMatMul"]})
    if images:
        ref = f if reference is None else (reference if isinstance(reference, OnnxFile) else read_onnx(reference))
        _measure(report, ref, images, batch_size)
    return report


def _runner(source: OnnxFile | Path, threads: int = 1) -> Any:
    """``batch -> outputs dict`` over a plain ONNX Runtime session (``threads`` intra-op, 1 inter-op), feeding
    a zero context (photo only) to a context model's graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if isinstance(source, OnnxFile):
        src: bytes | str = source.blob or str(source.path)
    else:
        src = str(source)
    try:
        sess = ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    except _ort_errors() as exc:
        where = source.path if isinstance(source, OnnxFile) else source
        raise ExportError(f"ONNX Runtime cannot load the model: {exc}", where) from exc
    names = [o.name for o in sess.get_outputs()]
    extra = [i for i in sess.get_inputs() if i.name != "input"]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input": np.ascontiguousarray(batch, dtype=np.float32)}
        for i in extra:
            feeds[i.name] = np.zeros((len(batch), int(i.shape[1])), np.float32)
        return dict(zip(names, sess.run(names, feeds), strict=True))

    return run


def _measure(report: FusionReport, reference: OnnxFile, images: Sequence[np.ndarray | str | Path],
             batch_size: int) -> None:
    """Top-1 agreement, max |Δp| and LSM token-set agreement of ``report.path`` vs ``reference`` (1 thread)."""
    bundle = reference.bundle
    batches = preprocessed_batches(images, bundle, batch_size)
    ref, got = run_all(_runner(reference), batches), run_all(_runner(report.path), batches)
    p_ref, p_got = probabilities(ref, bundle.taxonomy), probabilities(got, bundle.taxonomy)
    report.n_images = len(images)
    report.top1_agreement = top1_agreement(ref, got)
    report.max_prob_diff = float(np.abs(p_ref["disease_fused"] - p_got["disease_fused"]).max())
    for k in ref:
        if k.startswith("selected_"):
            same = [set(a.tolist()) == set(b.tolist()) for a, b in zip(ref[k], got[k], strict=True)]
            report.selected_agreement[k.removeprefix("selected_")] = float(np.mean(same))
