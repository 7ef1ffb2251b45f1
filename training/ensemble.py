"""EnsembleNet of the CNN/detection paper (§IV-B, Eq. 1): sum the members' predicted probabilities.

``dermviewer-train cv configs/baselines/ensemble.yaml`` runs every member config's CV on the *same*
folds (the ensemble's ``cv`` section overrides theirs), then sums the members' out-of-fold
probabilities and reports each member and the ensemble as rows of DermImitFormer's Table 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from training.config import ConfigError, ExperimentConfig, load_config
from training.evaluate import Predictions, compute_metrics, save_predictions_h5, table2_markdown
from training.run import ensure_pack, make_run_dir, run_cv

__all__ = ["combine_runs", "read_oof", "run_ensemble_cv"]


def read_oof(path: Path) -> Predictions:
    with h5py.File(path, "r") as f:
        order = np.argsort(f["pack_index"][()])
        return Predictions(
            indices=f["pack_index"][()][order],
            probs={k: f[f"probs/{k}"][()][order] for k in f["probs"]},
            embeddings=f["embeddings"][()][order],
            fold=f["fold"][()][order],
        )


def run_ensemble_cv(cfg: ExperimentConfig, config_path: Path | None, *, out: str | Path | None = None,
                    root: str | Path | None = None, log: Any = print) -> Path:
    base = Path(config_path).parent if config_path else Path.cwd()
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out)
    members: dict[str, Predictions] = {}
    folds_of: dict[str, list[dict[str, Any]]] = {}
    for member in cfg.ensemble:
        mpath = base / member
        over = {"cv": {"folds": cfg.cv.folds, "seed": cfg.cv.seed, "final_fit": False,
                       "only_folds": cfg.cv.only_folds},
                "output_dir": cfg.output_dir, "data": {"pack": cfg.data.pack, "limit": cfg.data.limit},
                "train": {"progress": cfg.train.progress}}
        mcfg = load_config(mpath, over)
        log(f"ensemble member {mcfg.name} ({mpath})")
        mdir = run_cv(mcfg, out=run_dir / mcfg.name, root=root, log=log)
        members[mcfg.name] = read_oof(mdir / "oof_predictions.h5")
        folds_of[mcfg.name] = json.loads((mdir / "metrics.json").read_text(encoding="utf-8"))["folds"]
    if not members:
        raise ConfigError("ensemble config lists no members")
    first = next(iter(members.values()))
    if any(not np.array_equal(p.indices, first.indices) for p in members.values()):
        raise ConfigError("ensemble members were evaluated on different images")
    probs = {k: sum(p.probs[k] for p in members.values()) / len(members)
             for k in ("disease", "disease_fused") if all(k in p.probs for p in members.values())}
    ens = Predictions(first.indices, probs, np.concatenate([p.embeddings for p in members.values()], axis=1),
                      fold=first.fold)
    save_predictions_h5(run_dir / "oof_predictions.h5", ens, data, run=cfg.name, members=list(members))
    ens_folds = _per_fold_metrics(ens, data)
    table = table2_markdown({**folds_of, f"{cfg.name} (sum of probabilities)": ens_folds})
    (run_dir / "table2.md").write_text(table, encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps({"folds": ens_folds}, indent=1, default=float), encoding="utf-8")
    log("\n" + table)
    return run_dir


def combine_runs(runs: Sequence[Path], *, root: str | Path | None = None, max_size: int | None = None,
                 log: Any = print) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The paper's summed-probability ensemble of finished `cv` runs, from their out-of-fold predictions (no
    training): each run alone, and every combination of 2 or more runs (up to ``max_size``), each scored per
    fold with the same metrics as the runs' own cards. The runs must have been cross-validated on the same
    photos and folds; the disease output is the fused d' where a run has one, else its disease head.

    Returns ``{label: [fold metrics]}`` and the Table 2-form markdown."""
    if len(runs) < 2:
        raise ConfigError("combine at least two cv runs")
    cfg = load_config(Path(runs[0]) / "config.yaml")
    data = ensure_pack(cfg, root, log)
    oof: dict[str, Predictions] = {}
    short = [Path(r).name for r in runs]
    for run, name in zip(runs, short, strict=True):
        path = Path(run) / "oof_predictions.h5"
        if not path.is_file():
            raise FileNotFoundError(f"{run}: not a finished cv run (no oof_predictions.h5)")
        oof[name if short.count(name) == 1 else str(run)] = read_oof(path)
    first = next(iter(oof.values()))
    for name, p in oof.items():
        if not np.array_equal(p.indices, first.indices) or p.fold is None or first.fold is None \
                or not np.array_equal(p.fold, first.fold):
            raise ConfigError(f"{name} was cross-validated on other photos or folds than {next(iter(oof))}")
    assert first.fold is not None
    disease = {name: p.probs["disease_fused"] if "disease_fused" in p.probs else p.probs["disease"]
               for name, p in oof.items()}
    names = list(oof)
    top = len(names) if max_size is None else min(max_size, len(names))
    methods: dict[str, list[dict[str, Any]]] = {}
    for size in range(1, top + 1):
        for combo in combinations(names, size):
            probs = sum(disease[n] for n in combo) / len(combo)
            ens = Predictions(first.indices, {"disease_fused": probs}, first.embeddings, fold=first.fold)
            methods[" + ".join(combo)] = _per_fold_metrics(ens, data)
    return methods, table2_markdown(methods)


def _per_fold_metrics(preds: Predictions, data: Any) -> list[dict[str, Any]]:
    """:func:`compute_metrics` of each fold's rows of out-of-fold predictions, in fold order."""
    assert preds.fold is not None
    out = []
    for f in sorted(set(preds.fold.tolist())):
        sel = preds.fold == f
        out.append(compute_metrics(Predictions(preds.indices[sel], {k: v[sel] for k, v in preds.probs.items()},
                                               preds.embeddings[sel]), data))
    return out
