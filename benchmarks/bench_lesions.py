"""What the lesion finder adds per photo (issue 15; printed, never asserted): ONNX Runtime time of the shipped
``resources/models/lesion_finder.onnx`` on real PAD-UFES-20 photos, the network alone and the whole
``LesionFinder.find`` (decode excluded; resize, network, back to the photo's frame, components), medians at
batch 1 with 1 and 2 intra-op threads, on the 300 px copies and on the full-resolution originals.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lesions.py [--photos 30] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"


def _median_ms(fn, items, repeats: int) -> float:
    for x in items[:2]:
        fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        for x in items:
            t = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finder", type=Path, default=None, help="lesion finder ONNX (default: the shipped one)")
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    import cv2

    from engine.imageio import load_image
    from engine.lesions import LesionFinder, default_finder_path

    cv2.setNumThreads(1)
    path = args.finder or default_finder_path()
    small = [load_image(p) for p in sorted((DATA / "images").glob("*.jpg"))[: args.photos]]
    large = [load_image(p) for p in sorted((DATA / "originals").glob("*.png"))]
    print(f"lesion finder {path} ({path.stat().st_size / 1e6:.1f} MB)")
    for threads in (1, 2):
        finder = LesionFinder(path, threads=threads)
        print(f"  {threads} thread(s), input {finder.size} px:")
        print(f"    network only:                       {_median_ms(finder.probability, small, args.repeats):6.1f} ms")
        print(f"    find() on {len(small)} 300-512 px photos:        "
              f"{_median_ms(finder.find, small, args.repeats):6.1f} ms")
        if large:
            side = statistics.median(max(im.shape[:2]) for im in large)
            print(f"    find() on {len(large)} originals (median {side:.0f} px): "
                  f"{_median_ms(finder.find, large, max(1, args.repeats // 3)):6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
