"""``dermviewer [PHOTOS or FOLDER...] [--model BUNDLE|ONNX|NAME]``: open the review window.

NAME is the stem of a bundle shipped in ``resources/models`` (``--model student``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dermviewer", description="DermViewer: review skin photos with a DermImitFormer "
                                "model. Research and education use; not a medical device.")
    p.add_argument("photos", nargs="*", help="photos or folders to open")
    p.add_argument("--model", help="a .dmvb bundle, an .onnx file, or the name of a bundled model such as "
                   "'default' or 'student' (default: the bundled default model)")
    args = p.parse_args(argv)
    if args.model is not None:
        from dermviewer.state.model import resolve_model_choice  # reads bundle headers: only when --model is given
        from engine.errors import BundleError

        try:
            args.model = str(resolve_model_choice(args.model))
        except BundleError as exc:
            p.error(f"argument --model: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from dermviewer.qt.app import run  # Qt is imported only when a window is wanted

    return run(args.photos, args.model)


if __name__ == "__main__":
    sys.exit(main())
