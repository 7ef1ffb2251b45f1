"""``dermviewer [PHOTOS or FOLDER...] [--model BUNDLE|ONNX|NAME]``: open the review window.

NAME is the stem of a bundle shipped in ``resources/models`` (``--model student``).
``dermviewer --self-test [--model ...]`` checks the installation without a display (dermviewer.qt.self_test).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dermviewer", description="DermViewer: review skin photos with a DermImitFormer "
                                "model. Research and education use; not a medical device.")
    p.add_argument("photos", nargs="*", help="photos or folders to open")
    p.add_argument("--self-test", action="store_true", help="check the installation without a window: load the "
                   "model, predict the bundled sample photo, draw its Grad-CAM; exit 0 with a one-line summary")
    p.add_argument("--model", help="a .dmvb bundle, an .onnx file, or the name of a bundled model such as "
                   "'default' or 'student' (default: the bundled default model)")
    args = p.parse_args(argv)
    if args.self_test and args.photos:
        p.error("--self-test checks the bundled sample photo and takes no photos")
    if args.model is not None:
        from dermviewer.state.model import resolve_model_choice  # reads bundle headers: only when --model is given
        from engine.errors import BundleError

        try:
            args.model = str(resolve_model_choice(args.model))
        except BundleError as exc:
            p.error(f"argument --model: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    if args.self_test:
        return _self_test(args.model, started)
    from dermviewer.qt.app import run  # Qt is imported only when a window is wanted

    return run(args.photos, args.model)


def _self_test(model: str | None, started: float) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported; a caller's choice stays
    try:
        from dermviewer.qt.self_test import main as self_test
    except ImportError as exc:  # an installation without a working Qt: that is what the self-test is for
        print(f"dermviewer self-test FAILED while starting Qt: {exc}", file=sys.stderr)
        return 1
    return self_test(model, started)


if __name__ == "__main__":
    sys.exit(main())
