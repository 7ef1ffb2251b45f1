"""Whole photo, lesion crop, or both? The CV comparison of issue 15 (``dermviewer-train lesion-crop-compare``).

Three answers for every photo, all out of fold on the same patient-grouped folds:

- **whole**: the whole-photo classifier's out-of-fold probabilities (a `cv` run's ``oof_predictions.h5``, or
  the shipped ``default.oof.h5``);
- **crop**: the same recipe trained and scored on the lesion-centred copies (``lesion-crops`` of a
  ``lesion-cv`` run, then ``cv ... --set data.spec=<crops>/spec.yaml``): its out-of-fold probabilities;
- **both**: the mean of the two probability vectors.

Disease macro-F1 and balanced accuracy per fold (rows flagged ``eval_exclude`` left out, as in every card),
mean ± std over folds. The folds of the two runs must agree photo by photo; they are checked, not assumed.

With ``--originals``, the same three answers on the full-resolution originals of the data set (PAD-UFES-20
ships 8): each photo's own fold's lesion finder (``fold<k>.pt`` of the lesion run) finds the lesion on the
original, the crop classifier of that fold classifies the full-resolution crop, and the whole-photo answer
is that photo's out-of-fold whole-photo probability (the whole frame squashed to the input size, from the
300 px copy: the same pixels to within resampling). Eight photos decide nothing; they are listed one by one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from engine.imageio import load_image
from engine.lesions import find_components, lesion_crop
from engine.metrics import format_mean_std, summarize_folds, to_jsonable
from engine.preprocess import PreprocessConfig, preprocess_batch

__all__ = ["compare_crops", "read_oof"]

Log = Callable[[str], Any]
KEY = "disease_fused"


def read_oof(path: str | Path, key: str = KEY) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][()]]
        return {"ids": ids, "fold": f["fold"][()], "labels": f["labels/disease"][()],
                "exclude": f["eval_exclude"][()].astype(bool), "probs": f[f"probs/{key}"][()]}


def _scores(y: np.ndarray, p: np.ndarray, fold: np.ndarray, keep: np.ndarray) -> list[dict[str, float]]:
    out = []
    for k in sorted(set(fold.tolist())):
        m = (fold == k) & keep
        pred = p[m].argmax(1)
        out.append({"macro_f1": float(f1_score(y[m], pred, average="macro")),
                    "bma": float(balanced_accuracy_score(y[m], pred))})
    return out


@torch.no_grad()
def _classify(model: torch.nn.Module, rgb: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    x = torch.from_numpy(preprocess_batch([rgb, np.ascontiguousarray(rgb[:, ::-1])], pre))
    logits = model(x)[KEY]
    return torch.softmax(logits, dim=1).mean(0).numpy()  # flip TTA, as the app runs it


def _originals(lesion_run: Path, crop_run: Path, whole: dict[str, Any], originals: Path,
               log: Log) -> list[dict[str, Any]]:
    from engine.models.lesion_seg import create_lesion_segnet
    from training.config import load_config
    from training.lesion_seg import SegConfig, _probability
    from training.run import ensure_pack, load_fold_model

    seg = SegConfig(**{k: v for k, v in json.loads((lesion_run / "config.json").read_text()).items()
                       if k in SegConfig.__dataclass_fields__})
    cfg = load_config(crop_run / "config.yaml")
    data = ensure_pack(cfg, None, log)
    codes = data.taxonomy.head("disease").codes
    index = {i: n for n, i in enumerate(whole["ids"])}
    rows = []
    with (originals / "originals.csv").open(newline="", encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    for entry in listed:
        key = entry["img_id"]
        n = index[key]
        k = int(whole["fold"][n])
        segnet = create_lesion_segnet(seg.variant, seg.width, pretrained=False)
        segnet.load_state_dict(torch.load(lesion_run / f"fold{k}.pt", map_location="cpu", weights_only=True))
        segnet.eval()
        rgb = load_image(originals / Path(entry["file"]).name)
        h, w = rgb.shape[:2]
        import cv2

        prob = cv2.resize(_probability(segnet, rgb, seg.size, seg.tta), (w, h), interpolation=cv2.INTER_LINEAR)
        found = find_components(prob, seg.threshold, seg.min_area, fill=seg.fill_holes)
        crop = lesion_crop(rgb, found[0].box) if found else rgb
        model, mcfg = load_fold_model(crop_run / f"fold{k}", data.taxonomy)
        model.eval()
        pre = PreprocessConfig(img_size=mcfg.img_size, mean=tuple(cfg.data.mean), std=tuple(cfg.data.std))
        p_crop = _classify(model, crop, pre)
        p_whole = whole["probs"][n]
        p_both = (p_crop + p_whole) / 2
        y = int(whole["labels"][n])
        rows.append({"id": key, "fold": k, "size": [h, w], "label": codes[y], "lesion_found": bool(found),
                     "whole": codes[int(p_whole.argmax())], "crop": codes[int(p_crop.argmax())],
                     "both": codes[int(p_both.argmax())]})
        log(f"original {key} ({w}x{h}, {codes[y]}): whole {rows[-1]['whole']}, crop {rows[-1]['crop']}, "
            f"both {rows[-1]['both']}")
    return rows


def compare_crops(whole_oof: str | Path, crop_run: str | Path, out: str | Path, *,
                  lesion_run: str | Path | None = None, originals: str | Path | None = None,
                  log: Log = print) -> Path:
    whole = read_oof(whole_oof)
    crop = read_oof(Path(crop_run) / "oof_predictions.h5")
    order = {i: n for n, i in enumerate(crop["ids"])}
    if set(order) != set(whole["ids"]):
        raise ValueError(f"{whole_oof} and {crop_run} score different photos")
    perm = np.array([order[i] for i in whole["ids"]])
    if not np.array_equal(crop["fold"][perm], whole["fold"]):
        raise ValueError(f"{whole_oof} and {crop_run} use different folds: the comparison would not be fair")
    y, fold, keep = whole["labels"], whole["fold"], ~whole["exclude"]
    p_whole, p_crop = whole["probs"], crop["probs"][perm]
    answers = {"whole photo": p_whole, "lesion crop": p_crop, "both (mean of the two)": (p_whole + p_crop) / 2}
    per_fold = {name: _scores(y, p, fold, keep) for name, p in answers.items()}
    summary = {name: summarize_folds(rows) for name, rows in per_fold.items()}
    lines = ["| Input | Disease macro-F1 (%) | BMA (%) |", "|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {format_mean_std(s['macro_f1']['mean'], s['macro_f1']['std'])} | "
                     f"{format_mean_std(s['bma']['mean'], s['bma']['std'])} |")
    result: dict[str, Any] = {"whole_oof": str(whole_oof), "crop_run": str(crop_run), "per_fold": per_fold,
                              "summary": summary}
    if originals is not None:
        if lesion_run is None:
            raise ValueError("--originals needs the lesion run (its fold models find the lesion on the originals)")
        rows = _originals(Path(lesion_run), Path(crop_run), whole, Path(originals), log)
        result["originals"] = rows
        n = len(rows)
        lines += ["", f"Full-resolution originals ({n} photos; correct top-1 of {n}):", "",
                  "| Input | Correct |", "|---|---|"]
        for name, col in (("whole photo", "whole"), ("lesion crop", "crop"), ("both", "both")):
            lines.append(f"| {name} | {sum(r[col] == r['label'] for r in rows)} of {n} |")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crop_compare.json").write_text(json.dumps(to_jsonable(result), indent=1), encoding="utf-8")
    (out / "crop_compare.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log("\n".join(lines))
    return out
