"""Robustness to workflow artefacts (Mishra et al., "Assessing Robustness of Deep learning Methods in
Dermatological Workflow", §2.3 and Table 5), using the engine's corruptions.

- Test on clean, salt-and-pepper (5 % of pixels, black:white 3:1 = ``engine.corrupt`` level 5) and
  blurred (5x5 Gaussian = level 3) copies of the same held-out images.
- Train on corrupted data: the corruption becomes an augmentation (``augment.corruptions``).
- Table 5: train clean / corrupted x test clean / S&P / blur, top-1 accuracy (plus BMA).
- Severity sweeps (accuracy and BMA vs level 1-5), the prediction-flip rate (share of images whose
  top-1 changes vs the clean prediction) and confusion matrices under each corruption.
Corruptions are applied to the packed image before the model's resize, seeded per image.
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from engine.metrics import classification_report, confusion_matrix_csv, confusion_matrix_png
from engine.models import ModelConfig
from training.config import ExperimentConfig
from training.data.pack import PackData
from training.data.splits import grouped_holdout
from training.evaluate import Predictions, predict
from training.run import ensure_pack, export_model, fit, load_fold_model, load_folds, make_dataset, make_run_dir

__all__ = [
    "CorruptionResult",
    "evaluate_robustness",
    "flip_rate",
    "run_robustness",
    "run_robustness_cv",
    "table5_cv_markdown",
    "table5_markdown",
]


@dataclass
class CorruptionResult:
    train: str
    test: str  # "clean" or "<corruption>@<level>"
    accuracy: float
    bma: float
    flip_rate: float
    n: int


def flip_rate(clean: Predictions, other: Predictions, key: str = "disease_fused") -> float:
    """Share of images whose top-1 prediction differs from the clean one."""
    a = clean.probs[key].argmax(1)
    b = other.probs[key].argmax(1)
    return float((a != b).mean()) if len(a) else float("nan")


def _score(preds: Predictions, data: PackData) -> tuple[float, float, np.ndarray, int]:
    keep = ~data.eval_exclude[preds.indices]
    y = data.labels["disease"][preds.indices][keep]
    rep = classification_report(y, preds.probs["disease_fused"][keep], data.taxonomy.head("disease").codes)
    return rep.accuracy, rep.balanced_accuracy, rep.confusion, int(keep.sum())


def evaluate_robustness(
    model: nn.Module, mcfg: ModelConfig, cfg: ExperimentConfig, data: PackData, test: np.ndarray,
    out_dir: Path, *, train_label: str = "clean", sweep: bool = True,
) -> list[CorruptionResult]:
    """Clean + table-level corruptions (with confusion matrices) + optional severity sweep for one model."""
    rc = cfg.robustness
    out_dir.mkdir(parents=True, exist_ok=True)
    names = data.taxonomy.head("disease").codes

    def run(corruption: tuple[str, int] | None) -> Predictions:
        ds = make_dataset(cfg, data, test, mcfg, train=False, corruption=corruption)
        ds.seed = rc.seed
        return predict(model, ds, batch_size=cfg.data.eval_batch_size)

    clean = run(None)
    acc, bma, cm, n = _score(clean, data)
    results = [CorruptionResult(train_label, "clean", acc, bma, 0.0, n)]
    confusion_matrix_csv(cm, names, out_dir / "confusion_clean.csv")
    confusion_matrix_png(cm, names, out_dir / "confusion_clean.png")
    levels = {(c, rc.table_levels.get(c, 3)) for c in rc.corruptions}
    if sweep:
        levels |= {(c, lv) for c in rc.corruptions for lv in rc.sweep_levels}
    for name, level in sorted(levels):
        preds = run((name, level))
        acc, bma, cm, n = _score(preds, data)
        results.append(CorruptionResult(train_label, f"{name}@{level}", acc, bma, flip_rate(clean, preds), n))
        if level == rc.table_levels.get(name, 3):
            confusion_matrix_csv(cm, names, out_dir / f"confusion_{name}@{level}.csv")
            confusion_matrix_png(cm, names, out_dir / f"confusion_{name}@{level}.png")
    return results


def table5_markdown(results: list[CorruptionResult], cfg: ExperimentConfig) -> str:
    """Mishra et al. Table 5: train status x test status -> top-1 accuracy (BMA and flip rate added)."""
    table_tests = {"clean"} | {f"{c}@{cfg.robustness.table_levels.get(c, 3)}" for c in cfg.robustness.corruptions}
    lines = ["| Train status | Test status | Top-1 Acc. (%) | BMA (%) | Flip rate (%) |", "|---|---|---|---|---|"]
    for r in results:
        if r.test in table_tests:
            lines.append(f"| {r.train} | {r.test} | {100 * r.accuracy:.2f} | {100 * r.bma:.2f} "
                         f"| {100 * r.flip_rate:.1f} |")
    return "\n".join(lines) + "\n"


def _sweep_plot(results: list[CorruptionResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for train in sorted({r.train for r in results}):
        clean = next((r.accuracy for r in results if r.train == train and r.test == "clean"), None)
        for name in sorted({r.test.split("@")[0] for r in results if "@" in r.test}):
            pts = sorted((int(r.test.split("@")[1]), r.accuracy) for r in results
                         if r.train == train and r.test.startswith(name + "@"))
            xs = [0, *[p[0] for p in pts]]
            ys = [clean, *[p[1] for p in pts]]
            ax.plot(xs, [100 * (y or 0) for y in ys], marker="o", label=f"train {train} / {name}")
    ax.set_xlabel("severity level (0 = clean)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy vs corruption severity")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _write_csv(results: list[CorruptionResult], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["train", "test", "accuracy", "bma", "flip_rate", "n"])
        w.writerows([r.train, r.test, r.accuracy, r.bma, r.flip_rate, r.n] for r in results)


def run_robustness(cfg: ExperimentConfig, *, bundle: str | Path | None = None, out: str | Path | None = None,
                   root: str | Path | None = None, train_models: bool = True, log: Any = print) -> Path:
    """Table 5. With ``bundle``: evaluate that model (train status "clean"); with ``train_models``: fit a
    clean and a corrupted-data model on a patient-grouped split and evaluate both."""
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out, "-robustness")
    idx = np.arange(len(data) if cfg.data.limit is None else min(cfg.data.limit, len(data)))
    tr, te = grouped_holdout(data.labels["disease"], data.groups, idx, cfg.train.val_fraction or 0.2, cfg.train.seed)
    (run_dir / "split.json").write_text(json.dumps({"train": [data.ids[i] for i in tr],
                                                    "test": [data.ids[i] for i in te]}), encoding="utf-8")
    results: list[CorruptionResult] = []
    if bundle is not None:
        from engine.bundle import load_bundle

        b = load_bundle(bundle)
        results += evaluate_robustness(b.build_model(), b.model_config, cfg, data, te, run_dir / "bundle",
                                       train_label=f"clean ({Path(bundle).name})")
    if train_models:
        tc = cfg.robustness.train_corruption
        corrupted = copy.deepcopy(cfg)
        corrupted.augment.corruptions = [tc]
        corrupted.augment.corruption_p = max(cfg.augment.corruption_p, 0.5)
        corrupted.augment.corruption_levels = (cfg.robustness.table_levels.get(tc, 5),)
        for label, c in (("clean", cfg), (f"{tc} corrupted", corrupted)):
            log(f"training on {label} data")
            fo = fit(c, data, tr, run_dir / label.replace(" ", "_"))
            results += evaluate_robustness(fo.model, fo.model_config, cfg, data, te,
                                           run_dir / label.replace(" ", "_"), train_label=label)
            export_model(fo.model, fo.model_config, c, data.taxonomy, run_dir / label.replace(" ", "_"), log=log)
    _write_csv(results, run_dir / "robustness.csv")
    table = table5_markdown(results, cfg)
    (run_dir / "table5.md").write_text(table, encoding="utf-8")
    (run_dir / "robustness.json").write_text(json.dumps([r.__dict__ for r in results], indent=1), encoding="utf-8")
    _sweep_plot(results, run_dir / "severity_sweep.png")
    log("\n" + table)
    return run_dir


def table5_cv_markdown(results: list[CorruptionResult], cfg: ExperimentConfig) -> str:
    """Table 5 over CV folds: mean ± std (over folds) of each train status x test status cell."""
    table_tests = ["clean"] + [f"{c}@{cfg.robustness.table_levels.get(c, 3)}" for c in cfg.robustness.corruptions]
    lines = ["| Train status | Test status | Top-1 Acc. (%) | BMA (%) | Flip rate (%) | Folds |",
             "|---|---|---|---|---|---|"]
    trains = list(dict.fromkeys(r.train for r in results))
    for train in trains:
        for test in table_tests:
            cell = [r for r in results if r.train == train and r.test == test]
            if not cell:
                continue

            def ms(v: list[float]) -> str:
                return f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1) if len(v) > 1 else 0.0:.1f}"

            lines.append(f"| {train} | {test} | {ms([r.accuracy for r in cell])} | {ms([r.bma for r in cell])} "
                         f"| {ms([r.flip_rate for r in cell])} | {len(cell)} |")
    return "\n".join(lines) + "\n"


def run_robustness_cv(cfg: ExperimentConfig, runs: dict[str, Path], *, out: str | Path | None = None,
                      root: str | Path | None = None, sweep: bool = True, log: Any = print) -> Path:
    """Table 5 on cross-validation: each fold model of each `cv` run in ``runs`` (label -> run folder, e.g.
    trained clean / trained on corrupted data, all on the same folds) is tested on clean and corrupted
    copies of its own held-out fold; cells are mean ± std over folds."""
    if not runs:
        raise ValueError("name at least one `cv` run")
    data = ensure_pack(cfg, root, log)
    folds = None
    for label, run in runs.items():
        if not (run / "folds.json").is_file():
            raise FileNotFoundError(f"{run}: not a `cv` run folder (no folds.json) for {label!r}")
        these = load_folds(run / "folds.json", data)
        if folds is not None and these.to_dict() != folds.to_dict():
            raise ValueError(f"{run}: its folds differ from the other runs'; Table 5 needs the same folds")
        folds = these
    assert folds is not None
    run_dir = make_run_dir(cfg, out, "-robustness-cv")
    results: list[CorruptionResult] = []
    for label, run in runs.items():
        for f in range(folds.k):
            log(f"{label}: fold {f + 1}/{folds.k}")
            model, mcfg = load_fold_model(run / f"fold{f}", data.taxonomy)
            te = folds.test_indices(f)
            results += evaluate_robustness(model, mcfg, cfg, data, te, run_dir / label.replace(" ", "_") / f"fold{f}",
                                           train_label=label, sweep=sweep)
    _write_csv(results, run_dir / "robustness.csv")
    table = table5_cv_markdown(results, cfg)
    (run_dir / "table5.md").write_text(table, encoding="utf-8")
    (run_dir / "robustness.json").write_text(
        json.dumps({"runs": {k: str(v) for k, v in runs.items()}, "results": [r.__dict__ for r in results]}, indent=1),
        encoding="utf-8")
    if sweep:
        _sweep_plot(_fold_means(results), run_dir / "severity_sweep.png")
    log("\n" + table)
    return run_dir


def _fold_means(results: list[CorruptionResult]) -> list[CorruptionResult]:
    keys = list(dict.fromkeys((r.train, r.test) for r in results))
    out = []
    for train, test in keys:
        cell = [r for r in results if r.train == train and r.test == test]
        out.append(CorruptionResult(train, test, float(np.mean([r.accuracy for r in cell])),
                                    float(np.mean([r.bma for r in cell])),
                                    float(np.mean([r.flip_rate for r in cell])), sum(r.n for r in cell)))
    return out
