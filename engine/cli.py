"""``dermviewer-predict``: the differential, body parts and attributes for photos, without a GUI.

Many photos in one call load the model once. With ``--json`` one JSON array is printed, one
object per photo in input order; an unreadable photo gets an ``"error"`` object and the exit
status is 1 after the others are done.

Photos run on ONNX Runtime by default, from the bundle's graph in the user's ONNX cache (built, with
torch, the first time a bundle is used; ``$DERMVIEWER_CACHE_DIR`` moves the cache), so an ordinary call
imports neither torch nor timm. ``--backend torch`` runs the torch module as before; ``--overlay``
imports the explanation code, which needs torch.

When the lesion finder is shipped (``resources/models/lesion_finder.onnx``, or ``--lesion-finder``), each
photo's object gains ``lesions: [{box, area_fraction, score}]`` (boxes ``[x0, y0, x1, y1]`` in the photo's
pixels, largest first; empty when no lesion is found) and ``--overlay`` draws their outlines and boxes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.context import ATTRIBUTE_FIELDS, ClinicalContext, ContextError
from engine.errors import DermViewerError
from engine.prediction import Prediction

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dermviewer-predict", description=__doc__.split("\n")[0])
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--model", type=Path, default=None, help="bundle (.dmvb) or ONNX file; default: the bundled model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default=None, choices=["torch", "onnx"],
                   help="onnx (default; an .onnx model always) or torch")
    p.add_argument("--json", action="store_true", help="print one JSON array instead of text")
    p.add_argument("--overlay", type=Path, default=None, metavar="OUT.png",
                   help="write the LSM attention overlay (one photo), or OUT_<stem>.png per photo for several")
    p.add_argument("--top", type=int, default=3, help="differential entries shown in text mode")
    p.add_argument("--lesion-finder", type=Path, default=None, metavar="FINDER.onnx",
                   help="lesion finder (default: the bundled one); its lesions go into the JSON and the overlay")
    p.add_argument("--no-lesions", action="store_true", help="do not run the lesion finder")
    c = p.add_argument_group("clinical context (models that take it; every field optional)")
    c.add_argument("--age", default=None, help="patient age in years")
    c.add_argument("--site", default=None, help="body site, e.g. face, back, forearm (the taxonomy's codes)")
    for name in ATTRIBUTE_FIELDS:
        c.add_argument(f"--{name}", default=None, metavar="yes|no", help=f"patient reports: {name}")
    c.add_argument("--context-from", type=Path, default=None, metavar="MANIFEST.csv",
                   help="read each photo's context from a manifest row whose image or img_id matches its file "
                        "name; flags given above override it")
    return p


def _context_source(args: argparse.Namespace) -> Callable[[Any], ClinicalContext | None]:
    """The clinical context of each photo: manifest row (if any) updated with the flags that were given."""
    flags = {k: v for k, v in {"age": args.age, "body_part": args.site,
                               **{n: getattr(args, n) for n in ATTRIBUTE_FIELDS}}.items() if v is not None}
    rows: dict[str, dict[str, Any]] = {}
    if args.context_from is not None:
        rows = _manifest_rows(args.context_from)
    ClinicalContext.from_mapping(flags)  # a bad flag fails before any photo is read

    def context_for(source: Any) -> ClinicalContext | None:
        stem = Path(str(source)).stem
        row = dict(rows.get(stem, {}))
        row.update(flags)
        return ClinicalContext.from_mapping(row) if row else None

    return context_for


def _manifest_rows(path: Path) -> dict[str, dict[str, Any]]:
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            out: dict[str, dict[str, Any]] = {}
            for row in reader:
                for key in ("image", "img_id"):
                    if row.get(key):
                        out[Path(row[key]).stem] = row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ContextError(f"{path}: cannot read the context manifest: {exc}") from exc
    if not out:
        raise ContextError(f"{path}: no rows with an image or img_id column")
    return out


def _make_predictor(args: argparse.Namespace) -> Any:
    from engine.inference import Predictor, onnx_predictor
    from resources import default_model_path

    model = args.model or default_model_path()
    if model.suffix == ".onnx":
        return onnx_predictor(model, device=args.device)
    return Predictor(model, device=args.device, backend=args.backend or "onnx")


def _text(path: Path, pred: Prediction, top: int) -> str:
    lines = [f"{path}"]
    for s in pred.differential[:top]:
        mark = " (malignant)" if s.malignant else ""
        lines.append(f"  {s.probability:6.1%}  {s.code:<5} {s.name}{mark}")
    if pred.body_parts:
        best = max(pred.body_parts, key=lambda s: s.probability)
        lines.append(f"  body part: {best.name} ({best.probability:.0%})")
    if pred.attributes:
        pos = [f"{s.name} ({s.probability:.0%})" for s in pred.attributes if s.positive]
        lines.append(f"  attributes: {', '.join(pos) if pos else 'none above threshold'}")
    if pred.context_used:
        lines.append(f"  clinical context used: {', '.join(pred.context_used)}")
    if pred.is_uncertain():
        lines.append("  note: the model is uncertain about this photo")
    return "\n".join(lines)


def _make_finder(args: argparse.Namespace) -> Any:
    """The lesion finder, or None when it is switched off or (the bundled one) not shipped."""
    from engine.lesions import LesionFinder, default_finder_path

    if args.no_lesions:
        return None
    if args.lesion_finder is None and not default_finder_path().is_file():
        return None
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return LesionFinder(args.lesion_finder, threads=min(2, cores))  # 14 ms on two threads here, 23 on one


def _write_overlay(out: Path, image: Any, pred: Prediction, lesions: Any) -> None:
    from engine.explain.overlay import draw_boxes, draw_outline, lsm_overlay_image
    from engine.imageio import save_image

    picture = lsm_overlay_image(image, pred)
    if lesions is not None and lesions.found:
        picture = draw_boxes(draw_outline(picture, lesions.mask), [les.box for les in lesions.lesions], (0, 255, 0))
    save_image(out, picture)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        predictor = _make_predictor(args)
    except DermViewerError as exc:
        print(f"dermviewer-predict: cannot load the model: {exc}", file=sys.stderr)
        return 2
    bundle = predictor.bundle
    if bundle.untrained:
        print(f"warning: model '{bundle.name}' is UNTRAINED (placeholder weights): outputs are meaningless",
              file=sys.stderr)
    try:
        context_for = _context_source(args)
    except DermViewerError as exc:
        print(f"dermviewer-predict: {exc}", file=sys.stderr)
        return 2
    if predictor.context_encoding is None and (args.context_from or any(
            getattr(args, n) is not None for n in ("age", "site", *ATTRIBUTE_FIELDS))):
        print(f"note: model '{bundle.name}' takes no clinical context; the context flags are ignored", file=sys.stderr)
    try:
        finder = _make_finder(args)
    except DermViewerError as exc:
        print(f"dermviewer-predict: cannot load the lesion finder: {exc}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    failed = 0
    for step in predictor.iter_predict(args.images, context_for=context_for):
        path = Path(step.source)
        if step.error is not None:
            failed += 1
            results.append({"image": str(path), "error": step.error.reason})
            if not args.json:
                print(f"{path}\n  error: {step.error.reason}", file=sys.stderr)
            continue
        assert step.prediction is not None
        entry: dict[str, Any] = {"image": str(path), **step.prediction.to_json()}
        image, lesions = None, None
        if finder is not None or args.overlay is not None:
            from engine.imageio import load_image

            try:
                image = load_image(path)
            except DermViewerError as exc:  # changed on disk since the model read it
                failed += 1
                results.append({"image": str(path), "error": exc.reason})
                print(f"{path}\n  error: {exc.reason}", file=sys.stderr)
                continue
            lesions = finder.find(image) if finder is not None else None
        if lesions is not None:
            entry["lesions"] = [les.to_json() for les in lesions.lesions]
        results.append(entry)
        if not args.json:
            print(_text(path, step.prediction, args.top))
            if lesions is not None:
                print(f"  lesions: {lesions.summary()}")
        if args.overlay is not None:
            out = args.overlay if len(args.images) == 1 else args.overlay.with_name(
                f"{args.overlay.stem}_{path.stem}{args.overlay.suffix}")
            try:
                _write_overlay(out, image, step.prediction, lesions)
            except DermViewerError as exc:
                failed += 1
                print(f"{out}: cannot write overlay: {exc.reason}", file=sys.stderr)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
