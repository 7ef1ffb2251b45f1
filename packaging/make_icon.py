"""Draw the app icon (PNG, square) with Pillow: a skin-toned tile, a lesion and the ring of a lens over it.

    python packaging/make_icon.py OUT.png [--size 256]

Drawn, not stored, so the repository holds no binary icon and any size can be made from one description.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SKIN = (232, 190, 160, 255)
LESION = (110, 62, 46, 255)
RING = (32, 92, 140, 255)


def draw_icon(size: int = 256) -> Image.Image:
    s = size * 4  # drawn large, scaled down: smooth edges without an anti-aliasing library
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0.04 * s, 0.04 * s, 0.96 * s, 0.96 * s), radius=0.2 * s, fill=SKIN)
    blot = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(blot).ellipse((0.30 * s, 0.28 * s, 0.64 * s, 0.60 * s), fill=LESION)
    img.alpha_composite(blot.filter(ImageFilter.GaussianBlur(0.015 * s)))
    d.ellipse((0.22 * s, 0.20 * s, 0.72 * s, 0.70 * s), outline=RING, width=int(0.06 * s))
    d.line((0.66 * s, 0.64 * s, 0.84 * s, 0.82 * s), fill=RING, width=int(0.09 * s))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_icon(args.size).save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
