"""``dermviewer [PHOTOS or FOLDER...] [--model BUNDLE|ONNX]``: open the review window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dermviewer", description="DermViewer: review skin photos with a DermImitFormer "
                                "model. Research and education use; not a medical device.")
    p.add_argument("photos", nargs="*", help="photos or folders to open")
    p.add_argument("--model", help="a .dmvb bundle or an .onnx file (default: the bundled model)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from dermviewer.qt.app import run  # Qt is imported only when a window is wanted

    return run(args.photos, args.model)


if __name__ == "__main__":
    sys.exit(main())
