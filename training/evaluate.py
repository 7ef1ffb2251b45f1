"""Evaluation with the engine's metrics; CV summaries in the form of DermImitFormer Table 2.

Every number comes from :mod:`engine.metrics` (the viewer uses the same code). Rows flagged
``eval_exclude`` (PAD-UFES-20's ``label_conflict``) are predicted and saved but kept out of the
metrics. Out-of-fold predictions and embeddings go to one HDF5 file for the viewer's error analysis.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine.metrics import (
    classification_report,
    confusion_matrix_csv,
    confusion_matrix_png,
    flatten_metrics,
    format_mean_std,
    multilabel_report,
    reliability_diagram,
    roc_curves_png,
    summarize_folds,
)
from training.data.dataset import PackDataset, collate
from training.data.pack import PackData
from training.losses import MultiTaskLoss

__all__ = [
    "PROB_HEADS",
    "Predictions",
    "compute_metrics",
    "flat_metrics",
    "predict",
    "save_predictions_h5",
    "table2_markdown",
    "write_plots",
]

PROB_HEADS = ("disease", "disease_fused", "body_part", "attributes")
_STR = h5py.string_dtype(encoding="utf-8")


@dataclass
class Predictions:
    """Probabilities per output (softmax, or sigmoid for multi-label heads) for pack rows ``indices``."""

    indices: np.ndarray
    probs: dict[str, np.ndarray]
    embeddings: np.ndarray
    loss: float | None = None
    fold: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def concat(parts: Sequence[Predictions]) -> Predictions:
        keys = set.intersection(*(set(p.probs) for p in parts))
        folds = [p.fold if p.fold is not None else np.full(len(p.indices), -1) for p in parts]
        return Predictions(
            indices=np.concatenate([p.indices for p in parts]),
            probs={k: np.concatenate([p.probs[k] for p in parts]) for k in sorted(keys)},
            embeddings=np.concatenate([p.embeddings for p in parts]),
            fold=np.concatenate(folds),
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: PackDataset,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    loss_fn: MultiTaskLoss | None = None,
    tta_hflip: bool = False,
) -> Predictions:
    """Run ``model`` in eval mode over ``dataset`` (its eval preprocessing, optional fixed corruption).

    ``tta_hflip`` averages each head's probabilities over the photo and its mirror image (the CNN/detection
    paper's flip TTA); embeddings, LSM outputs and the loss are those of the unflipped photo.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    multi = {h: dataset.data.taxonomy.head(h).multi_label for h in dataset.heads}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    probs: dict[str, list[np.ndarray]] = {}
    embs: list[np.ndarray] = []
    idx: list[np.ndarray] = []
    loss_sum, n = 0.0, 0
    for batch in loader:
        x = batch["image"].to(device)
        ctx = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        c = batch["context"].to(device) if "context" in batch else None
        with ctx:
            out = model(x) if c is None else model(x, c)
            flipped = (model(x.flip(-1)) if c is None else model(x.flip(-1), c)) if tta_hflip else None
        for key in PROB_HEADS:
            if key not in out:
                continue
            head = "disease" if key == "disease_fused" else key

            def _p(o: dict[str, torch.Tensor], key: str = key, head: str = head) -> torch.Tensor:
                logits = o[key].float()
                return torch.sigmoid(logits) if multi.get(head, False) else torch.softmax(logits, dim=-1)

            p = _p(out) if flipped is None else (_p(out) + _p(flipped)) / 2
            probs.setdefault(key, []).append(p.cpu().numpy())
        embs.append(out["embedding"].float().cpu().numpy())
        idx.append(batch["index"].numpy())
        if loss_fn is not None:
            t = {k: v.to(device) for k, v in batch["targets"].items()}
            m = {k: v.to(device) for k, v in batch["masks"].items()}
            loss_sum += float(loss_fn({k: v.float() for k, v in out.items()}, t, m).total) * len(x)
            n += len(x)
    model.train(was_training)
    return Predictions(
        indices=np.concatenate(idx),
        probs={k: np.concatenate(v) for k, v in probs.items()},
        embeddings=np.concatenate(embs),
        loss=loss_sum / n if n else None,
    )


def compute_metrics(preds: Predictions, data: PackData, *, exclude: bool = True) -> dict[str, Any]:
    """Engine reports per output: single-label heads -> classification_report, multi-label -> multilabel_report."""
    tax = data.taxonomy
    rows = preds.indices
    keep = ~data.eval_exclude[rows] if exclude else np.ones(len(rows), dtype=bool)
    result: dict[str, Any] = {"n_evaluated": int(keep.sum()), "n_excluded": int((~keep).sum())}
    if preds.loss is not None:
        result["loss"] = preds.loss
    for key, p in preds.probs.items():
        head = "disease" if key == "disease_fused" else key
        hs = tax.head(head)
        labels, masks = data.labels[head][rows], data.masks[head][rows]
        names = [c.name for c in hs.classes]
        if hs.multi_label:
            sel = keep
            if not sel.any():
                continue
            result[key] = multilabel_report(labels[sel], p[sel], names, mask=masks[sel] > 0).to_dict()
        else:
            sel = keep & (masks > 0) & (labels >= 0)
            if not sel.any():
                continue
            malignant = tax.malignant_mask() if head == "disease" else None
            result[key] = classification_report(labels[sel], p[sel], names, malignant=malignant).to_dict()
    return result


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``{"disease_fused.balanced_accuracy": 0.71, ...}`` (per-class rows included, lists dropped)."""
    return flatten_metrics(metrics)


def save_predictions_h5(path: str | Path, preds: Predictions, data: PackData, **attrs: Any) -> Path:
    """Out-of-fold file for the viewer: ids, fold, labels, masks, probabilities per head, embeddings."""
    path = Path(path)
    rows = preds.indices
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.array([data.ids[i] for i in rows], dtype=object), dtype=_STR)
        f.create_dataset("pack_index", data=rows)
        f.create_dataset("fold", data=preds.fold if preds.fold is not None else np.full(len(rows), -1))
        f.create_dataset("eval_exclude", data=data.eval_exclude[rows])
        f.create_dataset("embeddings", data=preds.embeddings.astype(np.float32))
        for head in data.labels:
            f.create_dataset(f"labels/{head}", data=data.labels[head][rows])
            f.create_dataset(f"masks/{head}", data=data.masks[head][rows])
        for key, p in preds.probs.items():
            f.create_dataset(f"probs/{key}", data=p.astype(np.float32))
        f.attrs["taxonomy"] = json.dumps(data.taxonomy.to_dict())
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v)
    return path


def write_plots(out_dir: str | Path, preds: Predictions, data: PackData, key: str = "disease_fused") -> list[Path]:
    """Confusion matrix (CSV + PNG), one-vs-rest ROC and reliability diagram for one single-label output."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = "disease" if key == "disease_fused" else key
    hs = data.taxonomy.head(head)
    if key not in preds.probs or hs.multi_label:
        return []
    rows = preds.indices
    labels, masks = data.labels[head][rows], data.masks[head][rows]
    sel = ~data.eval_exclude[rows] & (masks > 0) & (labels >= 0)
    y, p = labels[sel], preds.probs[key][sel]
    names = hs.codes
    rep = classification_report(y, p, names)
    return [
        confusion_matrix_csv(rep.confusion, names, out_dir / f"confusion_{key}.csv"),
        confusion_matrix_png(rep.confusion, names, out_dir / f"confusion_{key}.png"),
        roc_curves_png(y, p, names, out_dir / f"roc_{key}.png"),
        reliability_diagram(p, y, out_dir / f"reliability_{key}.png"),
    ]


_TABLE2 = (
    ("F1-score (%)", "weighted_f1"),
    ("Precision (%)", "weighted_precision"),
    ("Recall (%)", "weighted_recall"),
    ("Accuracy (%)", "accuracy"),
    ("BMA (%)", "balanced_accuracy"),
    ("Macro-F1 (%)", "macro_f1"),
)


def table2_markdown(methods: Mapping[str, Sequence[Mapping[str, Any]]], key: str = "disease_fused") -> str:
    """DermImitFormer Table 2: one row per method, mean ± std over folds of the weighted P/R/F1 and accuracy
    (the paper's PAD-UFES-20 rows have recall == accuracy, i.e. support-weighted averages), plus BMA and
    macro-F1 because PAD-UFES-20 is imbalanced."""
    header = "| Method | " + " | ".join(c for c, _ in _TABLE2) + " |"
    lines = [header, "|" + "---|" * (len(_TABLE2) + 1)]
    for method, folds in methods.items():
        per = [f[key] if key in f else f.get("disease", {}) for f in folds]
        summary = summarize_folds(per)
        cells = []
        for _, metric in _TABLE2:
            st = summary.get(metric)
            cells.append(format_mean_std(st["mean"], st["std"]) if st else "n/a")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
