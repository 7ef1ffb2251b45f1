"""Photo-only vs photo-plus-context figures of a context model's CV run, each fold model on its own test fold.

Rows reported (disease, fused head ``d'``; mean ± std over folds):

- ``photo``: every test photo, no context (what the CV table already scores);
- ``photo_complete``: the same model, photo only, on the test photos whose used fields are all known;
- ``context_full``: those photos with every field given;
- ``context_protocol``: those photos with each field dropped at random (p = 0.5, independent of the
  label), so that a field's absence carries no label information (training.data.context);
- ``absence_only``: a logistic regression fed only the absence pattern of the same rows, trained on the
  fold's training photos under the same protocol -- it should score at chance.

The gap between ``photo_complete`` and ``context_protocol`` is what the context adds on the same photos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.metrics import summarize_folds
from training.config import ExperimentConfig
from training.data.context import LabelledRows, absence_pattern, absence_protocol, complete_rows, pack_contexts
from training.data.pack import PackData
from training.evaluate import compute_metrics, flat_metrics, predict
from training.run import ensure_pack, load_fold_model, load_folds, make_dataset
from training.trainer import amp_dtype, resolve_device

__all__ = ["absence_only_scores", "run_context_cv"]

_KEYS = ("disease_fused.macro_f1", "disease_fused.balanced_accuracy", "disease_fused.accuracy")


def _scores(preds: Any, data: PackData) -> dict[str, float]:
    flat = flat_metrics(compute_metrics(preds, data))
    return {k: float(flat[k]) for k in _KEYS if k in flat}


def absence_only_scores(data: LabelledRows, train_rows: np.ndarray, test_rows: np.ndarray, fields: tuple[str, ...],
                        *, protocol: bool, seed: int = 0) -> dict[str, float]:
    """BMA of a classifier that sees only which fields are absent (natural absence, or under the protocol)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    contexts = pack_contexts(data)
    y = data.labels["disease"]

    def design(rows: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
        if protocol:
            p = absence_protocol(contexts, rows, fields, seed=s)
            return absence_pattern(p.contexts, fields), y[p.rows]
        return absence_pattern([contexts[int(i)] for i in rows], fields), y[rows]

    xtr, ytr = design(np.asarray(train_rows), seed + 1)
    xte, yte = design(np.asarray(test_rows), seed)
    clf = LogisticRegression(max_iter=1000, class_weight="balanced").fit(xtr.astype(float), ytr)
    return {"balanced_accuracy": float(balanced_accuracy_score(yte, clf.predict(xte.astype(float)))),
            "chance": 1.0 / len(np.unique(ytr)), "n": len(yte)}


def run_context_cv(run: Path, cfg: ExperimentConfig, *, out: Path | None = None, root: str | Path | None = None,
                   seeds: int = 3, log: Any = print) -> Path:
    """Score every fold model of the `cv` run ``run`` under the rows above; writes ``context_cv.json``."""
    if not (run / "folds.json").is_file():
        raise FileNotFoundError(f"{run}: not a `cv` run folder (no folds.json)")
    data = ensure_pack(cfg, root, log)
    folds = load_folds(run / "folds.json", data)
    contexts = pack_contexts(data)
    device = resolve_device(cfg.train.device)
    amp = amp_dtype(cfg.train.amp, device)
    per_fold: dict[str, list[dict[str, float]]] = {}
    counts: dict[str, int] = {}
    for f in range(folds.k):
        model, mcfg = load_fold_model(run / f"fold{f}", data.taxonomy)
        enc = mcfg.context_encoding()
        if enc is None:
            raise ValueError(f"{run}: the model takes no clinical context")
        te, tr = folds.test_indices(f), folds.train_indices(f)
        done = complete_rows([contexts[int(i)] for i in te], enc.fields)
        comp = te[done]
        counts[f"fold{f}"] = len(comp)
        log(f"fold {f + 1}/{folds.k}: {len(te)} test photos, {len(comp)} with every context field known")

        def score(rows: np.ndarray, ctx: dict[int, Any] | None, model: Any = model, mcfg: Any = mcfg
                  ) -> dict[str, float]:
            given = [ctx.get(i) for i in range(len(data))] if ctx is not None else None
            ds = make_dataset(cfg, data, rows, mcfg, train=False, contexts=given)
            return _scores(predict(model, ds, batch_size=cfg.data.eval_batch_size, device=device, amp=amp,
                                   tta_hflip=cfg.train.tta_hflip), data)

        rows: dict[str, dict[str, float]] = {
            "photo": score(te, None),
            "photo_complete": score(comp, None),
            "context_full": score(comp, {int(i): contexts[int(i)] for i in comp}),
        }
        proto = [score(p.rows, dict(zip(p.rows.tolist(), p.contexts, strict=True)))
                 for p in (absence_protocol(contexts, te, enc.fields, seed=s) for s in range(seeds))]
        rows["context_protocol"] = {k: float(np.mean([p[k] for p in proto])) for k in proto[0]}
        ab = absence_only_scores(data, tr, te, enc.fields, protocol=True)
        rows["absence_only"] = {"disease_fused.balanced_accuracy": ab["balanced_accuracy"]}
        for name, r in rows.items():
            per_fold.setdefault(name, []).append(r)
        log(f"fold {f + 1}: " + json.dumps({k: round(v.get('disease_fused.macro_f1', float('nan')), 3)
                                             for k, v in rows.items()}))
    summary = {name: {k: dict(v) for k, v in summarize_folds(folds_).items()} for name, folds_ in per_fold.items()}
    out_dir = out or run / "context_cv"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "context_cv.json"
    result = {"run": str(run), "seeds": seeds, "p_drop": 0.5, "tta_hflip": cfg.train.tta_hflip,
              "complete_photos": counts, "folds": per_fold, "summary": summary}
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    (out_dir / "context_cv.md").write_text(context_markdown(result), encoding="utf-8")
    log("\n" + context_markdown(result))
    log(f"wrote {path}")
    return path


_ROWS = (
    ("photo", "Photo only, every test photo"),
    ("photo_complete", "Photo only, photos whose context fields are all known"),
    ("context_full", "Photo + every context field, same photos"),
    ("context_protocol", "Photo + context, each field dropped at random (p 0.5): absence carries no label"),
    ("absence_only", "Only which fields are absent, under the same protocol (logistic regression)"),
)


def context_markdown(result: dict[str, Any]) -> str:
    """The photo-only / photo-plus-context table of a ``context_cv.json`` (mean ± std over folds, %)."""
    from engine.metrics import format_mean_std

    lines = ["| Input | Macro-F1 (%) | BMA (%) | Accuracy (%) |", "|---|---|---|---|"]
    for key, label in _ROWS:
        s = result["summary"].get(key, {})

        def cell(k: str, s: dict[str, Any] = s) -> str:
            v = s.get(f"disease_fused.{k}")
            return format_mean_std(v["mean"], v["std"]) if v else "n/a"

        lines.append(f"| {label} | {cell('macro_f1')} | {cell('balanced_accuracy')} | {cell('accuracy')} |")
    n = sum(result["complete_photos"].values())
    lines.append("")
    lines.append(f"{n} test photos over the folds have every field known; each protocol row is the mean of "
                 f"{result['seeds']} random drop draws; flip TTA {'on' if result['tta_hflip'] else 'off'}. "
                 "Chance BMA is 16.7 %.")
    return "\n".join(lines) + "\n"
