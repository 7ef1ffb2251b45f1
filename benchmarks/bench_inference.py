"""Inference benchmark: latency, throughput, explanation costs and achieved fraction of matmul peak.

Prints, in one run, for the default configuration (``dermimitformer_lite0``, 224 px) and the paper
configuration (``dermimitformer_vit_b16_384``; random weights, which cost the same as trained ones):

* inference latency p50/p95 at batch 1 and throughput at batch 8 for torch fp32, torch bf16
  autocast, ONNX Runtime fp32 and ONNX Runtime int8 (dynamic, MatMul weights only);
* the cost of the LSM map (+ boxes + overlay), Grad-CAM (fast path and plain pytorch-grad-cam) and
  attention rollout;
* achieved GFLOP/s (FLOPs counted with ``torch.utils.flop_counter.FlopCounterMode``) as a fraction
  of a large matmul's rate in the same precision, measured in this run (torch fp32 and bf16 matmul,
  ORT fp32 MatMul, ORT int8 MatMulInteger through tiny ONNX graphs);
* top-1 agreement of int8 vs fp32 ONNX on real PAD-UFES-20 photos;
* fused attention (issue 14, :mod:`engine.export.fuse`): ORT fused fp32 and fused + int8 (MatMul and
  ``Attention`` weights) beside fp32 and int8 MatMul-only, each against the int8 matmul ceiling of the same
  run, which blocks were fused, and where the fastest variant's time goes (ORT profiling aggregated by
  op type); then the fused graphs' top-1 agreement with fp32 on >= 60 real photos for the TRAINED
  shipped default (``resources/models/default.dmvb``), since random weights make agreement meaningless.

Figures are printed, never asserted. Random weights give near-flat logits, so the int8 top-1
agreement printed here is a pessimistic stand-in for a trained model's.

    .venv/bin/python benchmarks/bench_inference.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_inference.py --quick    # fewer iterations and photos
    .venv/bin/python benchmarks/bench_inference.py --fusion-only --configs dermimitformer_vit_b16_384

``--threads N`` (default 2) sets torch's threads and every ONNX Runtime session's intra-op threads
(inter-op 1), the matmul ceilings' included.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.bundle import Bundle  # noqa: E402
from engine.models import build_model, model_config  # noqa: E402
from engine.preprocess import PreprocessConfig, preprocess_batch  # noqa: E402
from engine.taxonomy import load_taxonomy  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"
CONFIGS = ("dermimitformer_lite0", "dermimitformer_vit_b16_384")


@dataclass
class Iters:
    latency: int
    throughput: int
    photos: int
    explain: int


def timed(fn: Callable[[], object], n: int, warmup: int = 1) -> np.ndarray:
    """Seconds per call over ``n`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def interleaved(fns: dict[str, Callable[[], object]], n: int, warmup: int = 1) -> dict[str, np.ndarray]:
    """``timed`` for several functions at once, one call of each per round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: np.empty(n) for k in fns}
    for i in range(n):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k][i] = time.perf_counter() - t0
    return out


def pct(t: np.ndarray, q: float) -> float:
    return float(np.percentile(t, q) * 1e3)


# --- matmul ceilings ------------------------------------------------------------------------------

THREADS = 2  # set by --threads: every ORT session's intra-op threads (inter-op 1); torch's too


def ort_session(path: Path | str | bytes, profile: str | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if profile is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


class OrtRun:
    """``run(batch) -> outputs`` over an ORT session at ``THREADS`` threads (zeros for a context input)."""

    def __init__(self, path: Path, profile: str | None = None) -> None:
        self.session: Any = ort_session(path, profile)
        self.names = [o.name for o in self.session.get_outputs()]
        self.extra = [(i.name, int(i.shape[1])) for i in self.session.get_inputs() if i.name != "input"]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input": np.ascontiguousarray(batch, dtype=np.float32)}
        feeds.update({k: np.zeros((len(batch), d), np.float32) for k, d in self.extra})
        return dict(zip(self.names, self.session.run(self.names, feeds), strict=True))


def torch_matmul_rate(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        t = timed(lambda: a @ b, reps, warmup=2)
    return 2 * n**3 / float(t.min()) / 1e9


def ort_matmul_rate(int8: bool, n: int = 2048, reps: int = 5) -> float:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        b = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("A", a_type, [n, n])],
                              [helper.make_tensor_value_info("Y", y_type, [n, n])], initializer=[b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess: Any = ort_session(model.SerializeToString())
    t = timed(lambda: sess.run(None, {"A": a}), reps, warmup=2)
    return 2 * n**3 / float(t.min()) / 1e9


# --- per-configuration runs ----------------------------------------------------------------------

def make_bundle(name: str) -> Bundle:
    torch.manual_seed(0)
    cfg = model_config(name).replace(pretrained=False)  # random weights: same cost, no downloads
    model = build_model(cfg).eval()
    return Bundle(name, "bench", cfg, PreprocessConfig(img_size=cfg.img_size), load_taxonomy("pad_ufes_20"),
                  {k: v.detach() for k, v in model.state_dict().items()}, provenance={"untrained": True})


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


def photos(n: int) -> list[np.ndarray]:
    from engine.imageio import load_image

    files = sorted((DATA / "images").glob("*.jpg"))
    step = max(1, len(files) // n)
    return [load_image(f) for f in files[::step][:n]]


def row(label: str, lat: np.ndarray, thr: np.ndarray, flops: float, peak: float, unit: str = "GFLOP/s") -> str:
    """One line: batch-1 latency, batch-8 throughput, achieved rate at both as a fraction of the ceiling."""
    per_img = float(np.median(thr)) / 8
    r1, r8 = flops / float(np.median(lat)) / 1e9, flops / per_img / 1e9
    return (f"  {label:<20} p50 {pct(lat, 50):7.1f} ms  p95 {pct(lat, 95):7.1f} ms | batch 8: {1 / per_img:5.2f} img/s "
            f"({per_img * 1e3:6.1f} ms/img) | b1/b8 {r1:5.1f}/{r8:5.1f} {unit} = {r1 / peak:4.0%}/{r8 / peak:4.0%}"
            f" of {peak:.0f}")


def matmul_ceilings() -> dict[str, float]:
    """Best-of-5 rate of a 2048^3 matmul per precision; measured right before each configuration so that
    both sides of the fraction see the same machine load."""
    peaks = {
        "torch fp32": torch_matmul_rate(torch.float32),
        "torch bf16": torch_matmul_rate(torch.bfloat16),
        "ORT fp32": ort_matmul_rate(int8=False),
        "ORT int8": ort_matmul_rate(int8=True),
    }
    print("  large-matmul ceilings (2048^3, best of 5): " + ", ".join(
        f"{k} {v:.0f} {'GOP/s' if 'int8' in k else 'GFLOP/s'}" for k, v in peaks.items()))
    return peaks


def bench_config(name: str, it: Iters, real: list[np.ndarray], tmp: Path, fusion_only: bool = False) -> None:
    from engine.explain import attention_rollout, grad_cam, lsm_overlay_image
    from engine.explain.gradcam import HeadClassTarget, HeadLogits, TokenGridReshape
    from engine.export import export_onnx, optimize_attention, quantize_fused_int8, quantize_int8
    from engine.prediction import decode_outputs

    t0 = time.perf_counter()
    bundle = make_bundle(name)
    cfg = bundle.model_config
    model = bundle.build_model("cpu")
    s = cfg.img_size
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n== {name}: {cfg.backbone}, {s} px, grid {cfg.grid_size}, K={cfg.top_k}, "
          f"{n_params:.1f} M params (built in {time.perf_counter() - t0:.1f} s)")
    x1 = torch.from_numpy(preprocess_batch(real[:1], bundle.preprocess))
    x8 = torch.from_numpy(preprocess_batch((real * 8)[:8], bundle.preprocess))
    peaks = matmul_ceilings()
    flops = count_flops(model, x1)
    print(f"  FLOPs per image: {flops / 1e9:.2f} GFLOP (FlopCounterMode, 2 per multiply-add)")
    pre = timed(lambda: preprocess_batch(real[:1], bundle.preprocess), 5)
    print(f"  preprocess one photo ({real[0].shape[1]}x{real[0].shape[0]}): {pct(pre, 50):.1f} ms")

    def torch_run(x: torch.Tensor, bf16: bool) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(x)
        return run

    print("  inference (backend forward on a preprocessed batch):")
    for label, bf16, peak in (() if fusion_only else (("torch fp32", False, "torch fp32"),
                                                       ("torch bf16 autocast", True, "torch bf16"))):
        lat = timed(torch_run(x1, bf16), it.latency)
        thr = timed(torch_run(x8, bf16), it.throughput)
        print(row(label, lat, thr, flops, peaks[peak]))

    t0 = time.perf_counter()
    fp32_path = export_onnx(bundle, tmp / f"{name}.onnx")
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = quantize_int8(fp32_path, tmp / f"{name}.int8.onnx")
    t_quant = time.perf_counter() - t0
    t0 = time.perf_counter()
    fused = optimize_attention(fp32_path, tmp / f"{name}.fused.onnx")
    t_fuse = time.perf_counter() - t0
    t0 = time.perf_counter()
    fq = quantize_fused_int8(fused.path, tmp / f"{name}.fused.int8.onnx")
    t_fq = time.perf_counter() - t0
    paths = {"ORT fp32": fp32_path, "ORT int8 (MatMul)": q.path, "ORT fused fp32": fused.path,
             "ORT fused + int8": fq.path}
    backends = {label: OrtRun(path) for label, path in paths.items()}
    # Round-robin over the variants (one call each per round): on a shared machine a load change then
    # slows every variant alike instead of whichever happened to be timed during it.
    a1, a8 = x1.numpy(), x8.numpy()
    lats = interleaved({k: partial(be.run, a1) for k, be in backends.items()}, it.latency)
    thrs = interleaved({k: partial(be.run, a8) for k, be in backends.items()}, it.throughput)
    p50: dict[str, float] = {}
    for label in backends:
        lat, thr = lats[label], thrs[label]
        p50[label] = pct(lat, 50)
        unit = "GOP/s" if "int8" in label else "GFLOP/s"
        print(row(label, lat, thr, flops, peaks["ORT int8" if "int8" in label else "ORT fp32"], unit)
              + f" | b1 min {lat.min() * 1e3:.1f} ms")
    print(f"  export {t_export:.1f} s ({fp32_path.stat().st_size / 1e6:.0f} MB), int8 quantisation {t_quant:.1f} s "
          f"({q.quantized_matmuls} MatMuls, {q.path.stat().st_size / 1e6:.0f} MB)")
    fusion_section(fused, fq, t_fuse, t_fq, p50, flops, peaks, paths, x1.numpy(), tmp)
    if fusion_only:
        del backends
        return

    fp32_be, int8_be = backends["ORT fp32"], backends["ORT int8 (MatMul)"]
    ref = torch_run(x8, False)()
    got = fp32_be.run(x8.numpy())
    diff = np.abs(torch.softmax(ref["disease_fused"], -1).numpy() - _softmax(got["disease_fused"])).max()  # type: ignore[index]
    print(f"  parity torch fp32 vs ORT fp32 on 8 photos: max |Δp| {diff:.1e}, LSM scores max |Δ| "
          f"{np.abs(ref['lsm_disease'].numpy() - got['lsm_disease']).max():.1e}")  # type: ignore[index]

    # Agreement int8 vs fp32 on real photos.
    batches = [preprocess_batch(real[i : i + 8], bundle.preprocess) for i in range(0, len(real), 8)]
    a = np.concatenate([fp32_be.run(b)["disease_fused"] for b in batches])
    b = np.concatenate([int8_be.run(b)["disease_fused"] for b in batches])
    pa, pb = _softmax(a), _softmax(b)
    print(f"  int8 vs fp32 on {len(real)} real photos: top-1 agreement {np.mean(a.argmax(1) == b.argmax(1)):.1%}, "
          f"max |Δp| {np.abs(pa - pb).max():.4f} (random weights: flat logits make this pessimistic)")

    # Explanations.
    out = {k: v.numpy() for k, v in torch_run(x1, False)().items()}  # type: ignore[attr-defined]
    pred = decode_outputs(out, 0, bundle.taxonomy, {}, cfg.grid_size)
    big = photos(1)[0] if not (DATA / "originals").is_dir() else _original()
    pred.image_size = big.shape[:2]
    t_lsm = timed(lambda: lsm_overlay_image(big, pred), it.explain)
    fast = timed(lambda: grad_cam(model, x1, "disease", 0), it.explain)
    layer = model.heads["disease"].blocks[-1].norm1
    reshape = TokenGridReshape(cfg.grid_size, cfg.num_prefix_tokens)

    def plain() -> object:
        from pytorch_grad_cam import GradCAM

        with GradCAM(HeadLogits(model, "disease_fused"), [layer], reshape_transform=reshape) as cam:
            return cam(x1, [HeadClassTarget("disease", 0)])

    slow = timed(plain, max(2, it.explain // 2))
    roll = timed(lambda: attention_rollout(model, x1, "disease"), it.explain)
    fwd = float(np.median(timed(torch_run(x1, False), 3)))
    print("  explanations (one photo, fp32):")
    print(f"    LSM map + boxes + overlay on a {big.shape[1]}x{big.shape[0]} photo: {pct(t_lsm, 50):7.1f} ms "
          f"(from outputs the forward pass already has)")
    for label, t in (("Grad-CAM, gradients from the target layer on", fast),
                     ("Grad-CAM, plain pytorch-grad-cam", slow),
                     ("attention rollout (backbone + disease head)", roll)):
        print(f"    {label + ':':<46} {pct(t, 50):7.1f} ms = {np.median(t) / fwd:.2f} x forward ({fwd * 1e3:.0f} ms)")
    del backends, fp32_be, int8_be


# --- fused attention (issue 14) -------------------------------------------------------------------

INT8_KERNELS = ("QAttention", "DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat",
                "DynamicQuantizeLinear", "QGemm")
FP32_MATMULS = ("MatMul", "FusedMatMul", "Gemm", "Attention", "Conv", "FusedConv")
TARGET_MS = 200.0


def op_type_profile(path: Path, x: np.ndarray, tmp: Path, runs: int = 3) -> tuple[list[tuple[str, float, int]], float]:
    """ORT profiling (``SessionOptions.enable_profiling``) of ``runs`` batch-1 runs after one warm-up:
    [(op type, kernel ms per run, nodes per run)] by time, and the mean wall time of a run."""
    import json
    from collections import Counter

    be = OrtRun(path, profile=str(tmp / "ort-profile"))
    be.run(x)
    for _ in range(runs):
        be.run(x)
    f = Path(be.session.end_profiling())
    events = json.loads(f.read_text())
    f.unlink()
    walls = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    dur: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            dur[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    n = runs + 1  # the warm-up run is profiled too; kernel times are averaged over all runs
    return ([(op, us / n / 1e3, count[op] // n) for op, us in dur.most_common()],
            float(np.mean(walls)) / 1e3 if walls else float("nan"))


def fusion_section(fused: Any, fq: Any, t_fuse: float, t_fq: float, p50: dict[str, float], flops: float,
                   peaks: dict[str, float], paths: dict[str, Path], x1: np.ndarray, tmp: Path) -> None:
    """Which blocks were fused, each ORT variant against the int8 ceiling, and where the fastest's time goes."""
    print(f"  fused attention ({t_fuse:.1f} s, {fused.path.stat().st_size / 1e6:.0f} MB): "
          f"{fused.attention_fused} blocks -> Attention ({', '.join(fused.fused_blocks) or 'none'})")
    if not fused.attention_fused:
        print("    NOTHING WAS FUSED: the fused rows above are the unfused graph after the optimizer's other fusions")
    reasons: dict[str, list[str]] = {}
    for entry in fused.unfused_blocks:
        block, why = entry.split(": ", 1)
        reasons.setdefault(why, []).append(block)
    for why, blocks in reasons.items():
        print(f"    left explicit, {why}: {', '.join(blocks)}")
    print("    optimizer's fused-operator statistics: "
          + ", ".join(f"{k} {v}" for k, v in fused.fused_operators.items() if v))
    print(f"    fused + int8 ({t_fq:.1f} s, {fq.path.stat().st_size / 1e6:.0f} MB): "
          + ", ".join(f"{v} {k}" for k, v in fq.quantized.items()))
    int8_peak, fp32_peak = peaks["ORT int8"], peaks["ORT fp32"]
    floor8, floor32 = flops / int8_peak / 1e9 * 1e3, flops / fp32_peak / 1e9 * 1e3
    print(f"  batch-1 p50 vs this run's ceilings ({THREADS} threads): int8 MatMulInteger {int8_peak:.0f} GOP/s "
          f"(all {flops / 1e9:.0f} GOP at that rate = {floor8:.0f} ms), ORT fp32 MatMul {fp32_peak:.0f} GFLOP/s "
          f"(= {floor32:.0f} ms); target <= {TARGET_MS:.0f} ms")
    base = p50["ORT fp32"]
    for label, ms in p50.items():
        rate = flops / (ms / 1e3) / 1e9
        print(f"    {label:<20} {ms:7.1f} ms  {base / ms:4.2f}x ORT fp32  {rate:6.1f} G(FL)OP/s = "
              f"{rate / int8_peak:4.0%} of the int8 ceiling, {floor8 / ms:4.0%} of the way to it"
              + ("  <= target" if ms <= TARGET_MS else ""))
    best = min(p50, key=lambda k: p50[k])
    rows, wall = op_type_profile(paths[best], x1, tmp)
    total = sum(ms for _, ms, _ in rows)
    print(f"  where the time goes, {best} (ORT profiling, batch 1, mean of 4 runs: kernels {total:.1f} ms of "
          f"{wall:.1f} ms per run):")
    for op, ms, n in rows[:14]:
        print(f"    {op:<26} {ms:7.1f} ms  {ms / total:5.1%}  ({n} nodes)")
    rest = rows[14:]
    if rest:
        print(f"    {len(rest)} other op types      {sum(ms for _, ms, _ in rest):7.1f} ms")
    groups = {"int8 matmul kernels": INT8_KERNELS, "fp32 matmuls / conv / fused Attention": FP32_MATMULS}
    shares = {g: sum(ms for op, ms, _ in rows if op in ops) for g, ops in groups.items()}
    shares["everything else (norms, GELU, softmax, reshapes)"] = total - sum(shares.values())
    print("    by kind: " + "; ".join(f"{g} {ms:.1f} ms ({ms / total:.0%})" for g, ms in shares.items()))
    if best == "ORT fused + int8" and fq.quantized.get("QAttention"):
        print("    (QAttention includes each fused block's softmax(QKᵀ)V, which runs in fp32 inside the operator)")
    if p50[best] > TARGET_MS:
        print(f"  target missed: {p50[best]:.0f} ms > {TARGET_MS:.0f} ms; the int8 ceiling alone allows "
              f"{floor8:.0f} ms at {THREADS} threads")


def trained_agreement(n_photos: int, tmp: Path) -> None:
    """Top-1 agreement of the fused graphs with fp32 for the shipped, trained default on real photos."""
    from engine.bundle import load_bundle
    from engine.export import export_onnx, optimize_attention, quantize_fused_int8, quantize_int8

    path = ROOT / "resources" / "models" / "default.dmvb"
    bundle = load_bundle(path)
    cfg = bundle.model_config
    files = sorted((DATA / "images").glob("*.jpg"))
    step = max(1, len(files) // n_photos)
    photos_ = [str(f) for f in files[::step][:n_photos]]
    print(f"\n== trained default {path.name}: {bundle.name} v{bundle.version}, {cfg.backbone}, {cfg.img_size} px, "
          f"depth {cfg.depth} + heads {cfg.head_depth}x{len(cfg.heads)}, {cfg.num_heads} heads"
          + (" (UNTRAINED placeholder)" if bundle.untrained else "") + f"; {len(photos_)} real photos")
    fp32 = export_onnx(bundle, tmp / "default.onnx")
    fused = optimize_attention(fp32, tmp / "default.fused.onnx", images=photos_)
    print(f"  fused fp32: {fused.attention_fused} blocks -> Attention ({', '.join(fused.fused_blocks) or 'none'})")
    if not fused.attention_fused:
        print("  NOTHING WAS FUSED in the default's graph: the agreement below is of the graph after the optimizer's "
              "other fusions only")
    print(f"    {fused.summary()}")
    fq = quantize_fused_int8(fused.path, tmp / "default.fused.int8.onnx", reference=fp32, images=photos_)
    print(f"  fused + int8: {fq.summary()}")
    q = quantize_int8(fp32, tmp / "default.int8.onnx", images=photos_)
    print(f"  int8 MatMul-only, for comparison: {q.summary()}")
    x1 = preprocess_batch([load_image_(photos_[0])], bundle.preprocess)
    lat = {}
    for label, p in (("ORT fp32", fp32), ("ORT int8 (MatMul)", q.path), ("ORT fused fp32", fused.path),
                     ("ORT fused + int8", fq.path)):
        be = OrtRun(p)
        lat[label] = pct(timed(partial(be.run, x1), 30, warmup=2), 50)
    print("  batch-1 p50 (one forward, no TTA): " + ", ".join(f"{k} {v:.1f} ms" for k, v in lat.items()))
    ok = (fq.top1_agreement or 0) >= 0.99
    print(f"  fused + int8 top-1 agreement {fq.top1_agreement:.1%} {'>=' if ok else '<'} 99 % target")


def load_image_(path: str) -> np.ndarray:
    from engine.imageio import load_image

    return load_image(path)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _original() -> np.ndarray:
    from engine.imageio import load_image

    return load_image(sorted((DATA / "originals").glob("*.png"))[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer iterations and photos (~4 min)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads and every ORT session's intra-op threads (inter-op 1); default 2")
    p.add_argument("--fusion-only", action="store_true",
                   help="only the ORT rows, the fused-attention section and the trained default's agreement")
    p.add_argument("--agreement-photos", type=int, default=60, help="real photos for the trained agreement")
    args = p.parse_args(argv)
    global THREADS
    THREADS = args.threads
    torch.set_num_threads(args.threads)
    it = Iters(latency=4, throughput=2, photos=16, explain=3) if args.quick else Iters(10, 3, 48, 5)
    import tempfile

    import onnxruntime as ort

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (a shared machine makes every figure slower); "
          f"--threads {THREADS} (ORT intra-op {THREADS}, inter-op 1; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')})")
    t0 = time.perf_counter()
    real = photos(it.photos)
    with tempfile.TemporaryDirectory(prefix="dermviewer-bench-") as tmp:
        for name in args.configs:
            bench_config(name, it, real, Path(tmp), args.fusion_only)
        trained_agreement(args.agreement_photos, Path(tmp))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s, load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
