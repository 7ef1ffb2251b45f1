"""Soak (issue 16): many predictions with explanations in one process, watching resident memory for a leak.

Each step is what reviewing one photo costs the engine: decode a real PAD-UFES-20 photo (cycled through the
shared images), predict it with the bundled default on the torch backend (the bundle's flip TTA included),
Grad-CAM of its top class, and the CAM blended over the photo (``engine.explain.overlay``). Resident memory
is read from ``/proc/self/statm`` every ``--every`` steps. Printed: RSS after the warm-up (step 100, or half
of ``--n`` when fewer), at the end, and the least-squares slope over the samples after the warm-up.

Exit status 1 when memory keeps growing: the end is more than ``--tolerance-mb`` above the warm-up figure
*and* the slope is above ``--max-slope-mb`` per 1,000 steps (allocator noise moves one sample, not a trend).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_soak.py [--n 1000] [--every 50] [--model PATH]
    ... --n 200 --simulate-leak-kb 1024   # a deliberate 1 MB per step: must exit 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def slope_per_1000(steps: list[int], rss: list[float]) -> float:
    """MB per 1,000 steps, least squares; 0 with fewer than two samples."""
    if len(steps) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(steps, float), np.asarray(rss, float), 1)[0] * 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="predictions with explanations (default 1000)")
    ap.add_argument("--every", type=int, default=50, help="sample RSS every this many steps")
    ap.add_argument("--model", type=Path, default=None, help="bundle (default: the bundled default)")
    ap.add_argument("--tolerance-mb", type=float, default=64.0, help="allowed growth after the warm-up")
    ap.add_argument("--max-slope-mb", type=float, default=32.0, help="allowed trend, MB per 1,000 steps")
    ap.add_argument("--simulate-leak-kb", type=int, default=0,
                    help="keep this many KB per step on purpose, to see the check fail (default 0)")
    args = ap.parse_args()

    import torch

    import resources
    from engine.explain import blend, grad_cam, overlay
    from engine.imageio import load_image
    from engine.inference import Predictor
    from engine.preprocess import preprocess

    photos = sorted(DATA.glob("*.jpg"))
    if not photos:
        print(f"no photos under {DATA}", file=sys.stderr)
        return 2
    model_path = args.model or resources.default_model_path()
    t0 = time.perf_counter()
    predictor = Predictor(model_path, device="cpu")
    codes = [c.code for c in predictor.bundle.taxonomy.head("disease").classes]
    print(f"{predictor.bundle.name} on torch, {torch.get_num_threads()} thread(s), {len(photos)} photos cycled, "
          f"load average {os.getloadavg()[0]:.2f}; model loaded in {time.perf_counter() - t0:.1f} s, "
          f"RSS {rss_mb():.0f} MB")
    warmup = min(100, max(1, args.n // 2))
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    at_warmup = samples[0][1]
    kept: list[bytes] = []  # --simulate-leak-kb
    t0 = time.perf_counter()
    for step in range(1, args.n + 1):
        rgb = load_image(photos[(step - 1) % len(photos)])
        pred = predictor.predict(rgb)
        cam = grad_cam(predictor.model, preprocess(rgb, predictor.bundle.preprocess), "disease",
                       codes.index(pred.top.code))
        drawn = blend(rgb, overlay(rgb, cam, alpha=0.5))
        if drawn.shape != rgb.shape or not np.isfinite(cam).all():
            raise RuntimeError(f"step {step}: a broken overlay ({drawn.shape}) or a non-finite CAM")
        if args.simulate_leak_kb:
            kept.append(os.urandom(args.simulate_leak_kb * 1024))
        if step == warmup:
            at_warmup = rss_mb()
        if step % args.every == 0 or step == args.n:
            samples.append((step, rss_mb()))
            rate = step / (time.perf_counter() - t0)
            print(f"  step {step:5d}: RSS {samples[-1][1]:7.1f} MB  ({rate:.2f} steps/s)", flush=True)
    elapsed = time.perf_counter() - t0
    end = samples[-1][1]
    after = [(s, r) for s, r in samples if s >= warmup]
    slope = slope_per_1000([s for s, _ in after], [r for _, r in after])
    growth = end - at_warmup
    print(f"{args.n} predictions + Grad-CAM + overlay in {elapsed:.0f} s ({elapsed / args.n * 1e3:.0f} ms each), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"RSS after {warmup}: {at_warmup:.1f} MB; at the end ({args.n}): {end:.1f} MB; growth {growth:+.1f} MB; "
          f"slope after the warm-up {slope:+.1f} MB per 1,000 (tolerance: growth {args.tolerance_mb:.0f} MB and "
          f"slope {args.max_slope_mb:.0f} MB/1,000)")
    if growth > args.tolerance_mb and slope > args.max_slope_mb:
        print("FAIL: resident memory keeps growing", file=sys.stderr)
        return 1
    print("OK: no sustained growth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
