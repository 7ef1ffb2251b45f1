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
* top-1 agreement of int8 vs fp32 ONNX on real PAD-UFES-20 photos.

Figures are printed, never asserted. Random weights give near-flat logits, so the int8 top-1
agreement printed here is a pessimistic stand-in for a trained model's.

    .venv/bin/python benchmarks/bench_inference.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_inference.py --quick    # fewer iterations and photos
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def pct(t: np.ndarray, q: float) -> float:
    return float(np.percentile(t, q) * 1e3)


# --- matmul ceilings ------------------------------------------------------------------------------

def torch_matmul_rate(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        t = timed(lambda: a @ b, reps, warmup=2)
    return 2 * n**3 / float(t.min()) / 1e9


def ort_matmul_rate(int8: bool, n: int = 2048, reps: int = 5) -> float:
    import onnx
    import onnxruntime as ort
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
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
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


def bench_config(name: str, it: Iters, real: list[np.ndarray], tmp: Path) -> None:
    from engine.explain import attention_rollout, grad_cam, lsm_overlay_image
    from engine.explain.gradcam import HeadClassTarget, HeadLogits, TokenGridReshape
    from engine.export import OnnxBackend, export_onnx, quantize_int8
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
    for label, bf16, peak in (("torch fp32", False, "torch fp32"), ("torch bf16 autocast", True, "torch bf16")):
        lat = timed(torch_run(x1, bf16), it.latency)
        thr = timed(torch_run(x8, bf16), it.throughput)
        print(row(label, lat, thr, flops, peaks[peak]))

    t0 = time.perf_counter()
    fp32_path = export_onnx(bundle, tmp / f"{name}.onnx")
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = quantize_int8(fp32_path, tmp / f"{name}.int8.onnx")
    t_quant = time.perf_counter() - t0
    backends = {"ORT fp32": OnnxBackend(fp32_path), "ORT int8 (MatMul)": OnnxBackend(q.path)}
    for label, be in backends.items():
        a1, a8 = x1.numpy(), x8.numpy()
        lat = timed(lambda be=be, a=a1: be.run(a), it.latency)
        thr = timed(lambda be=be, a=a8: be.run(a), it.throughput)
        unit = "GOP/s" if "int8" in label else "GFLOP/s"
        print(row(label, lat, thr, flops, peaks["ORT int8" if "int8" in label else "ORT fp32"], unit))
    print(f"  export {t_export:.1f} s ({fp32_path.stat().st_size / 1e6:.0f} MB), int8 quantisation {t_quant:.1f} s "
          f"({q.quantized_matmuls} MatMuls, {q.path.stat().st_size / 1e6:.0f} MB)")

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
    args = p.parse_args(argv)
    it = Iters(latency=4, throughput=2, photos=16, explain=3) if args.quick else Iters(10, 3, 48, 5)
    import tempfile

    import onnxruntime as ort

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (a shared machine makes every figure slower)")
    t0 = time.perf_counter()
    real = photos(it.photos)
    with tempfile.TemporaryDirectory(prefix="dermviewer-bench-") as tmp:
        for name in args.configs:
            bench_config(name, it, real, Path(tmp))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s, load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
