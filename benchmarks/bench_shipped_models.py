"""Figures for the shipped models' cards (printed, never asserted): per-photo latency of each bundle in
``resources/models`` (torch fp32 / bf16 autocast, ONNX Runtime fp32 / int8 MatMul-only) at batch 1 on
real PAD-UFES-20 photos, int8 top-1 agreement with fp32, and the CV figures stored with each model.
With a teacher and its distilled student among them it ends with the SkinDistilViT Table 3 trade-off
(BMA retention, CPU speed-up, parameters), optionally written as markdown for the student's card.

    .venv/bin/python benchmarks/bench_shipped_models.py [--photos 60] [--repeats 30] [--table3 OUT.md]
    .venv/bin/python benchmarks/bench_shipped_models.py --models runs/a/a.dmvb runs/b/b.dmvb
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"


def _p50(fn, x, repeats: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--models", type=Path, nargs="*", default=None,
                    help="bundles to measure (default: every .dmvb in resources/models)")
    ap.add_argument("--teacher", default="default", help="file stem of the teacher among the models")
    ap.add_argument("--student", default="student", help="file stem of the distilled student")
    ap.add_argument("--table3", type=Path, default=None, help="write the teacher/student table here")
    args = ap.parse_args()

    from engine.bundle import load_bundle
    from engine.export import OnnxBackend, export_onnx, quantize_int8
    from engine.imageio import load_image
    from engine.preprocess import preprocess

    torch.set_num_threads(os.cpu_count() or 1)
    photos = sorted(DATA.glob("*.jpg"))[: args.photos]
    print(f"load average {os.getloadavg()[0]:.2f}; {torch.get_num_threads()} threads; {len(photos)} photos")
    rows: dict[str, dict[str, float]] = {}
    for path in args.models or sorted((ROOT / "resources" / "models").glob("*.dmvb")):
        row = rows.setdefault(path.stem, {})
        bundle = load_bundle(path)
        model = bundle.build_model("cpu")
        x1 = torch.from_numpy(preprocess(load_image(photos[0]), bundle.preprocess))[None]
        print(f"== {path.name}: {bundle.name} v{bundle.version}, {bundle.model_config.img_size} px, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params"
              + (" (UNTRAINED placeholder)" if bundle.untrained else ""))

        def torch_run(x: torch.Tensor, bf16: bool = False, model: torch.nn.Module = model) -> None:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                model(x)

        row["params"] = sum(p.numel() for p in model.parameters())
        row["torch"] = _p50(torch_run, x1, args.repeats)
        print(f"  torch fp32 p50 {row['torch']:7.1f} ms/photo")
        print(f"  torch bf16 p50 {_p50(lambda x: torch_run(x, True), x1, args.repeats):7.1f} ms/photo")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(bundle, Path(tmp) / "m.onnx")
            q = quantize_int8(fp32, Path(tmp) / "m.int8.onnx", images=[str(p) for p in photos])
            for label, onnx_path in (("ORT fp32", fp32), ("ORT int8", q.path)):
                be = OnnxBackend(onnx_path, device="cpu")
                row[label] = _p50(be.run, x1.numpy(), args.repeats)
                print(f"  {label:10} p50 {row[label]:7.1f} ms/photo")
            print(f"  {q.summary()}")
            # what the app runs per photo: the Predictor on the bundle's own ONNX graph, flip TTA included
            # when the bundle says so (preprocess.tta_hflip), decoding included
            from engine.inference import Predictor

            pred = Predictor.from_backend(bundle, OnnxBackend(fp32, device="cpu"))
            rgb = load_image(photos[0])
            tta = "with flip TTA" if bundle.preprocess.tta_hflip else "no TTA"
            row["predictor"] = _p50(pred.predict, rgb, args.repeats)
            print(f"  Predictor on ORT fp32 ({tta}, from decoded RGB) p50 {row['predictor']:7.1f} ms/photo")
        cv = path.parent / f"{path.stem}.cv.json"
        cv = cv if cv.is_file() else path.parent / "metrics.json"  # a run folder
        if cv.is_file():
            summary = json.loads(cv.read_text())["summary"]
            for key in ("balanced_accuracy", "macro_f1", "accuracy"):
                st = summary.get(f"disease_fused.{key}")
                if st:
                    row[key] = 100 * st["mean"]
                    print(f"  CV {key} {100 * st['mean']:.1f} ± {100 * st['std']:.1f} % ({cv})")
    t, s = rows.get(args.teacher), rows.get(args.student)
    if t and s:
        table = table3(t, s)
        print("\n" + table)
        if args.table3:
            args.table3.write_text(table, encoding="utf-8")
    return 0


def table3(t: dict[str, float], s: dict[str, float]) -> str:
    """SkinDistilViT Table 3 form: teacher, student and the gain (relative change) per column."""
    cols = [("BMA (%)", lambda r: r.get("balanced_accuracy")), ("Macro-F1 (%)", lambda r: r.get("macro_f1")),
            ("Accuracy (%)", lambda r: r.get("accuracy")),
            ("Speed CPU torch (it/s)", lambda r: 1e3 / r["torch"]),
            ("Speed CPU ORT (it/s)", lambda r: 1e3 / r["ORT fp32"]),
            ("#Params (M)", lambda r: r["params"] / 1e6)]
    lines = ["| | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in (("Teacher (default)", t), ("Student", s)):
        vals = [f(r) for _, f in cols]
        lines.append(f"| {name} | " + " | ".join("n/a" if v is None else f"{v:.2f}" for v in vals) + " |")
    gains = []
    for _, f in cols:
        a, b = f(t), f(s)
        gains.append("n/a" if a is None or b is None else f"{100 * (b - a) / a:+.2f}%")
    lines.append("| Gain | " + " | ".join(gains) + " |")
    speed = t["torch"] / s["torch"], t["ORT fp32"] / s["ORT fp32"]
    bma = (s.get("balanced_accuracy") or 0) / (t.get("balanced_accuracy") or float("nan"))
    lines.append(f"\nStudent speed-up at batch 1: {speed[0]:.2f}x (torch fp32), {speed[1]:.2f}x (ORT fp32); "
                 f"BMA retention {100 * bma:.1f}% of the teacher's. No GPU here, so no GPU column.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
