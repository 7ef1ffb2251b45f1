"""The lesion finder's model card (issue 15): ``python -m training.lesion_card RUN [--rescored DIR] ...``.

Copies the run's ONNX file (the rescored one when given: its metadata carries the post-processing the CV
figures were measured with) to ``resources/models/lesion_finder.onnx``, its CV figures to
``lesion_finder.cv.json`` and renders ``lesion_finder.md`` from them and from the section files given
(speed, crop comparison), each written by the command that measured it. ``tests/engine/test_lesion_card.py``
checks the card's figures against the JSON and the JSON against the shipped file's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from engine.metrics import format_mean_std

__all__ = ["cv_table", "render_card", "ship"]

ROWS = (("Dice", "dice"), ("IoU", "iou"), ("Boundary F-score (tolerance 0.75 % of the diagonal)", "boundary_f"),
        ("Box IoU, main lesion", "box_iou"), ("Photos with a lesion found", "found_rate"))


def _row(label: str, summary: dict[str, Any], key: str) -> str:
    s = summary[key]
    return f"| {label} | {format_mean_std(s['mean'], s['std'], percent=False, digits=3)} |"


def cv_table(summary: dict[str, Any]) -> str:
    """The CV figures as the card's markdown table (mean ± std over folds)."""
    lines = ["| Figure | Value |", "|---|---|"]
    return "\n".join(lines + [_row(label, summary, key) for label, key in ROWS if key in summary]) + "\n"


def render_card(cv: dict[str, Any], sections: list[tuple[str, str]], commands: list[str], size_mb: float,
                sha256: str) -> str:
    cfg = cv["config"]
    summary = cv["summary"]
    n = int(cv["pooled"]["n"])
    lines = [
        "# lesion_finder: outline and box the lesion on a photo",
        "",
        f"An ImageNet EfficientNet-Lite{cfg['variant']} encoder with a feature-pyramid decoder "
        f"({cfg['width']} channels), {cfg['size']} px input, trained on the hand-drawn lesion masks of PAD-UFES-20 "
        f"(640 of 666 photos; non-expert outlines, see the data README) for {cfg['epochs']} epochs by "
        "`dermviewer-train lesion-cv`. "
        f"Post-processing: lesion probability > {cfg['threshold']}"
        + (", averaged over the photo and its mirror image" if cfg.get("tta") else "")
        + (", holes inside a region filled" if cfg.get("fill_holes") else "")
        + f", every 8-connected region of at least {100 * cfg['min_area']:.1f} % of the photo is a lesion "
        "(largest first). It runs in ONNX Runtime without torch; the app draws its outlines and boxes and can "
        "run the classifier on the crop around a chosen lesion.",
        "",
        f"File: `lesion_finder.onnx`, {size_mb:.1f} MB, SHA-256 `{sha256[:16]}…`.",
        "",
        f"## Cross-validation ({cfg['folds']} folds, patient-grouped, the disease classifier's folds; "
        f"{n} masked test photos, each scored in its own frame)",
        "",
        "Mean ± std over folds:",
        "",
        cv_table(summary).rstrip(),
    ]
    targets = [("Dice", "dice", 0.80), ("Box IoU", "box_iou", 0.70)]
    met = [f"{name} {summary[k]['mean']:.3f} against the target {t:.2f}: "
           + ("met" if summary[k]["mean"] >= t else f"missed by {t - summary[k]['mean']:.3f}")
           for name, k, t in targets]
    lines += ["", "Targets (issue 15): " + "; ".join(met) + "."]
    for title, body in sections:
        lines += ["", f"## {title}", "", body.strip()]
    lines += ["", "## Reproduce", "", "```", *commands, "```", ""]
    return "\n".join(lines)


def ship(run: Path, out_dir: Path, sections: list[tuple[str, Path]], commands: list[str]) -> Path:
    cv = json.loads((run / "lesion_cv.json").read_text(encoding="utf-8"))
    onnx_path = run / "lesion_finder.onnx"
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: the run has no exported finder")
    from engine.lesions import LesionFinder

    meta = LesionFinder(onnx_path).meta
    for key in ("size", "threshold", "min_area", "tta", "fill_holes"):
        if meta.get(key) != cv["config"].get(key):
            raise ValueError(f"{onnx_path}: its {key} {meta.get(key)!r} is not the CV's {cv['config'].get(key)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out_dir / "lesion_finder.onnx")
    (out_dir / "lesion_finder.cv.json").write_text(json.dumps(cv, indent=1), encoding="utf-8")
    blob = (out_dir / "lesion_finder.onnx").read_bytes()
    text = render_card(cv, [(t, p.read_text(encoding="utf-8")) for t, p in sections], commands, len(blob) / 1e6,
                       hashlib.sha256(blob).hexdigest())
    (out_dir / "lesion_finder.md").write_text(text, encoding="utf-8")
    return out_dir / "lesion_finder.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ship the lesion finder of a lesion-cv run with its card")
    ap.add_argument("run", type=Path, help="lesion-cv run folder (or its --rescore output)")
    ap.add_argument("--out", type=Path, default=Path("resources/models"))
    ap.add_argument("--section", action="append", default=[], metavar="TITLE=FILE.md")
    ap.add_argument("--command", action="append", default=[], help="a reproducing command, in order")
    args = ap.parse_args(argv)
    sections = []
    for item in args.section:
        title, _, path = item.partition("=")
        sections.append((title, Path(path)))
    print(ship(args.run, args.out, sections, args.command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
