"""Model cards and shipping: every figure in a card is read from the metrics file of the run it names.

``ship_model`` copies a CV run's final bundle (as fp16), out-of-fold predictions and
metrics into ``resources/models`` and renders ``<name>.md`` from them, so a card cannot drift from
its run: ``tests/training/test_model_card.py`` recomputes each figure from the stored metrics file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.metrics import format_mean_std

__all__ = ["ABLATION_METRICS", "CARD_METRICS", "CardInputs", "card_rows", "render_card", "ship_model"]

# (label in the card, key in the run's fold metrics)
CARD_METRICS: tuple[tuple[str, str], ...] = (
    ("Disease macro-F1", "disease_fused.macro_f1"),
    ("Disease macro precision", "disease_fused.macro_precision"),
    ("Disease macro recall", "disease_fused.macro_recall"),
    ("Disease accuracy", "disease_fused.accuracy"),
    ("Disease balanced accuracy (BMA)", "disease_fused.balanced_accuracy"),
    ("Disease weighted F1", "disease_fused.weighted_f1"),
    ("Disease macro AUROC", "disease_fused.macro_auroc"),
    ("Disease ECE (15 bins)", "disease_fused.ece"),
    ("Malignant vs benign sensitivity", "disease_fused.malignancy.sensitivity"),
    ("Malignant vs benign specificity", "disease_fused.malignancy.specificity"),
    ("Body part top-1 accuracy", "body_part.accuracy"),
    ("Body part macro-F1", "body_part.macro_f1"),
    ("Attributes mAP (class)", "attributes.map_class"),
    ("Attributes macro-F1", "attributes.macro_f1"),
)
ABLATION_METRICS: tuple[tuple[str, str], ...] = (
    ("Disease macro-F1", "disease_fused.macro_f1"),
    ("BMA", "disease_fused.balanced_accuracy"),
    ("Accuracy", "disease_fused.accuracy"),
    ("Body part macro-F1", "body_part.macro_f1"),
    ("Attributes macro-F1", "attributes.macro_f1"),
)


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def card_rows(metrics: Mapping[str, Any], table: Sequence[tuple[str, str]] = CARD_METRICS) -> list[tuple[str, str]]:
    """(label, "mean ± std") per metric, from a run's ``metrics.json`` (its ``summary`` block)."""
    summary = metrics["summary"]
    rows = []
    for label, key in table:
        st = summary.get(key)
        rows.append((label, format_mean_std(st["mean"], st["std"]) if st else "n/a"))
    return rows


@dataclass
class CardInputs:
    name: str
    title: str
    run_dir: Path
    command: str
    description: str = ""
    ablations: dict[str, Path] = field(default_factory=dict)
    extra_sections: dict[str, str] = field(default_factory=dict)
    failure_modes: list[str] = field(default_factory=list)
    model_name: str | None = None  # the name the app shows; the file stem ``name`` by default


def _wall(metrics: Mapping[str, Any]) -> str:
    total = metrics.get("total_wall_time_s") or metrics.get("cv_wall_time_s")
    return f"{total / 60:.1f} min" if total else "n/a"


def render_card(inp: CardInputs) -> str:
    metrics = json.loads((inp.run_dir / "metrics.json").read_text(encoding="utf-8"))
    cfg_text = (inp.run_dir / "config.yaml").read_text(encoding="utf-8") if (inp.run_dir / "config.yaml").is_file() \
        else "(config not found)"
    k = len(metrics.get("folds", []))
    lines = [
        f"# {inp.title}",
        "",
        "**Intended use: research and education. Not a medical device; not for diagnosing patients.**",
        "",
        inp.description,
        "",
        "## Data",
        "PAD-UFES-20 development subset (`../shared/data/pad_ufes_20`: 666 clinical smartphone photos of 524 "
        "patients; ACK 130, BCC 189, MEL 35, NEV 172, SCC 28, SEK 112), CC BY 4.0. Folds are stratified by "
        "diagnosis and grouped by patient (no patient in two folds); `label_conflict` photos are trained on "
        "but not scored. This subset is not the paper's full 2,298-image release: figures are not comparable "
        "one to one with the paper's.",
        "",
        "## Reproduce",
        "```bash",
        inp.command,
        "```",
        f"Run: `{inp.run_dir.name}` · {k}-fold CV wall time + final fit: {_wall(metrics)} on this project's "
        "2-core CPU machine. The stored metrics file of that run is shipped beside this card "
        f"(`{inp.name}.cv.json`); `tests/training/test_model_card.py` checks every figure below against it.",
        "",
        f"## {k}-fold patient-grouped cross-validation (mean ± std over folds, %)",
        "| Metric | Value |",
        "|---|---|",
        *[f"| {label} | {value} |" for label, value in card_rows(metrics)],
        "",
        "Disease figures use the fused prediction d' (Eq. 5); body part is single-label (softmax) on this "
        "data set; attribute metrics ignore unknown (empty) labels.",
        "",
    ]
    table2 = inp.run_dir / "table2.md"
    if table2.is_file():
        lines += ["### In the form of DermImitFormer Table 2 (weighted averages, as the paper's PAD-UFES-20 rows)",
                  "", table2.read_text(encoding="utf-8").strip(), ""]
    if inp.ablations:
        lines += ["## Ablation on the same folds (DermImitFormer Table 1 form; mean ± std, %)",
                  "| Model | " + " | ".join(lbl for lbl, _ in ABLATION_METRICS) + " | Run |",
                  "|---|" + "---|" * (len(ABLATION_METRICS) + 1)]
        for label, run in inp.ablations.items():
            m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            cells = [v for _, v in card_rows(m, ABLATION_METRICS)]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | `{run.name}` |")
        lines.append("")
    for title, body in inp.extra_sections.items():
        lines += [f"## {title}", body.strip(), ""]
    if inp.failure_modes:
        lines += ["## Known failure modes", *[f"- {f}" for f in inp.failure_modes], ""]
    lines += ["## Resolved training config", "```yaml", cfg_text.strip(), "```", ""]
    return "\n".join(lines)


def ship_model(inp: CardInputs, dest: Path) -> dict[str, Path]:
    """Copy the run's final bundle (fp16), OOF predictions and metrics to ``dest`` and write the card."""
    from engine.bundle import load_bundle, save_bundle

    dest.mkdir(parents=True, exist_ok=True)
    run = inp.run_dir
    src = next((run / "final").glob("*.dmvb"), None) or next(run.glob("*.dmvb"))
    b = load_bundle(src)
    model = b.build_model()
    # the shipped model predicts the way its CV was scored (flip TTA or not), whatever wrote the bundle
    tta = bool(((yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("train") or {})
               .get("tta_hflip", False)) if (run / "config.yaml").is_file() else b.preprocess.tta_hflip
    pre = dataclasses.replace(b.preprocess, tta_hflip=tta)
    out = {"bundle": save_bundle(dest / f"{inp.name}.dmvb", model, model_config=b.model_config,
                                 taxonomy=b.taxonomy, preprocess=pre, name=inp.model_name or inp.name,
                                 version=b.version, thresholds=b.thresholds, metrics=b.metrics,
                                 provenance={**b.provenance, "run": run.name}, half=True)}
    out["metrics"] = dest / f"{inp.name}.cv.json"
    shutil.copyfile(run / "metrics.json", out["metrics"])
    if (run / "oof_predictions.h5").is_file():
        out["oof"] = dest / f"{inp.name}.oof.h5"
        shutil.copyfile(run / "oof_predictions.h5", out["oof"])
    out["card"] = dest / f"{inp.name}.md"
    out["card"].write_text(render_card(inp), encoding="utf-8")
    return out
