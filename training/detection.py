"""Detection-based classification after the CNN/detection paper (He et al., Section IV-B; issue 15):
``dermviewer-train detect-cv``.

The paper trains RetinaNet and Faster R-CNN on lesion boxes labelled with the photo's disease and takes
"the prediction of the box which has the highest confidence" as the photo's diagnosis, against a
whole-photo CNN. Here:

- **Boxes** come from the hand-drawn lesion masks (640 of PAD-UFES-20's 666 photos): the tight box of the
  mask's largest region (:func:`engine.metrics.segmentation.main_component`), cut from the same augmented
  view as the photo (random resized crop, flips, 90° rotations, colour jitter: the lesion finder's
  augmentation, :func:`training.lesion_seg._augment`). A view whose crop leaves no lesion pixel is a
  background-only example. Each box is labelled with the photo's diagnosis.
- **Detector**: torchvision's RetinaNet (focal loss with the paper's alpha 0.25, gamma 2; GroupNorm in its heads
  and gradient-norm clipping for stability at batch 8) on the ImageNet
  EfficientNet-Lite encoder (the only pretrained weights available offline; the paper used
  ResNeXt-101) with torchvision's feature pyramid on its stride-16 and stride-32 stages (P4, P5; PAD-UFES-20
  lesions cover a median 9 % of the photo, so no stride-8 level is needed), 3 sizes x 3 aspect ratios of
  anchors per level, 64 FPN channels (CPU budget). Input: the photo squashed to ``size`` px, as the
  classifier sees it. The encoder's first ``frozen_stages`` stages stay ImageNet's.
- **Class balance**: photos are drawn with probability inversely proportional to their class's frequency,
  the sampling counterpart of the whole-photo classifier's balanced class weights, so rare classes (SCC 28,
  MEL 35 photos) are not left to the focal loss alone.
- **Folds**: the classifier's (:func:`training.data.splits.make_folds` over the whole manifest, same seed),
  so each test photo is scored by the fold model that never saw it, as the whole-photo classifier's
  out-of-fold predictions are. Every non-excluded test photo is classified, masked or not; a photo where
  the detector finds no box above ``score_thresh`` counts as wrong (as in the paper: "fail to detect any
  targets"), and how often that happens is reported.

Out: ``detect_cv.json`` (config, per-fold and mean ± std disease figures, box IoU of the top box with the
mask's box, no-detection rate), ``oof_detections.csv`` (each photo's top box, class, score) and each fold's
weights in ``fold<k>.pt``. :func:`compare_with_classifier` scores the whole-photo classifier's
out-of-fold predictions on the same photos and folds.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.imageio import load_image
from engine.masks import MaskSource
from engine.metrics import summarize_folds, to_jsonable
from engine.metrics.segmentation import box_iou, main_component, mask_box
from engine.models.efficientnet_lite import create_efficientnet_lite
from training.config import OptimConfig
from training.data.manifest import read_manifest
from training.data.spec import load_spec
from training.data.splits import make_folds
from training.lesion_seg import _augment
from training.optim import build_scheduler

__all__ = ["DetConfig", "box_from_mask", "build_detector", "compare_markdown", "compare_with_classifier",
           "disease_scores", "run_detect_cv", "top_box", "write_comparison"]

Log = Callable[[str], Any]
FPN_STAGES = (4, 6)  # timm stage indices at strides 16 and 32


@dataclass
class DetConfig:
    variant: int = 0
    size: int = 256
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5.0e-4  # FPN and heads; the encoder runs at lr * encoder_lr_mult
    grad_clip: float = 1.0  # max gradient norm (a fold at lr 1e-3 without it diverged and collapsed to one class)
    encoder_lr_mult: float = 0.1
    weight_decay: float = 1.0e-4
    frozen_stages: int = 2  # stem and the first stages stay ImageNet's
    fpn_channels: int = 64
    crop_scale: tuple[float, float] = (0.5, 1.0)
    balanced: bool = True
    score_thresh: float = 0.05
    folds: int = 5
    seed: int = 0  # the classifier's cv.seed: the same folds
    threads: int = 1
    limit: int | None = None  # the first N photos of the manifest (smoke runs and tests)


class LiteFPN(nn.Module):
    """EfficientNet-Lite stages -> torchvision FeaturePyramidNetwork on strides 16 and 32 (``out_channels``)."""

    def __init__(self, variant: int, channels: int, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        enc = create_efficientnet_lite(variant, pretrained=pretrained)
        self.stem = nn.Sequential(enc.conv_stem, enc.bn1)
        self.blocks = enc.blocks
        with torch.no_grad():
            h, chans = self.stem(torch.zeros(1, 3, 64, 64)), []
            for i, stage in enumerate(self.blocks):
                h = stage(h)
                if i in FPN_STAGES:
                    chans.append(int(h.shape[1]))
        self.fpn = FeaturePyramidNetwork(chans, channels)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        h, feats = self.stem(x), OrderedDict()
        for i, stage in enumerate(self.blocks):
            h = stage(h)
            if i in FPN_STAGES:
                feats[f"p{i}"] = h
        out: OrderedDict[str, torch.Tensor] = self.fpn(feats)
        return out


def build_detector(cfg: DetConfig, num_classes: int, pretrained: bool = True) -> nn.Module:
    """torchvision RetinaNet on :class:`LiteFPN`; images in [0, 1], normalised as EfficientNet-Lite expects."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead

    s = cfg.size / 256
    sizes = tuple(tuple(round(v * s) for v in level) for level in ((24, 40, 64), (96, 150, 240)))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))
    backbone = LiteFPN(cfg.variant, cfg.fpn_channels, pretrained=pretrained)
    # GroupNorm in the heads, as torchvision's RetinaNet v2: steadier on batches of 8
    head = RetinaNetHead(cfg.fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 16))
    return RetinaNet(backbone, num_classes, min_size=cfg.size, max_size=cfg.size, image_mean=[0.5] * 3,
                     image_std=[0.5] * 3, anchor_generator=anchors, head=head, score_thresh=cfg.score_thresh,
                     detections_per_img=20)


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box (x0, y0, x1, y1) of the mask's largest region, or None when no lesion pixel is left."""
    return mask_box(main_component(mask))


def top_box(det: dict[str, torch.Tensor]) -> tuple[int, float, list[float]] | None:
    """The paper's rule: the class, score and box of the highest-scoring detection, or None for no detection."""
    if det["scores"].numel() == 0:
        return None
    k = int(torch.argmax(det["scores"]))
    return int(det["labels"][k]), float(det["scores"][k]), [float(v) for v in det["boxes"][k]]


def disease_scores(det: dict[str, torch.Tensor], num_classes: int) -> np.ndarray:
    """Per class, the highest score of any box of that class (0 where none): a ranking for AUROC-type use."""
    out = np.zeros(num_classes, np.float32)
    for lab, sc in zip(det["labels"].tolist(), det["scores"].tolist(), strict=True):
        out[lab] = max(out[lab], sc)
    return out


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1) / 255.0


def _target(mask: np.ndarray, label: int) -> dict[str, torch.Tensor]:
    box = box_from_mask(mask)
    if box is None:
        return {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    return {"boxes": torch.tensor([box], dtype=torch.float32), "labels": torch.tensor([label])}


def train_detector(cfg: DetConfig, images: list[np.ndarray], masks: list[np.ndarray], labels: np.ndarray,
                   num_classes: int, seed: int, desc: str, log: Log) -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_detector(cfg, num_classes)
    bb: Any = model.backbone
    frozen = [*bb.stem.parameters()] + [p for s in bb.blocks[: cfg.frozen_stages] for p in s.parameters()]
    frozen_ids = {id(p) for p in frozen}
    for p in frozen:
        p.requires_grad_(False)
    enc = [p for p in [*bb.stem.parameters(), *bb.blocks.parameters()] if id(p) not in frozen_ids]
    enc_ids = {id(p) for p in enc} | frozen_ids
    rest = [p for p in model.parameters() if id(p) not in enc_ids]
    opt = torch.optim.AdamW([{"params": enc, "lr": cfg.lr * cfg.encoder_lr_mult}, {"params": rest, "lr": cfg.lr}],
                            weight_decay=cfg.weight_decay)
    n = len(images)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = 1.0 / counts[labels] if cfg.balanced else np.ones(n)
    weights /= weights.sum()
    steps = max(1, n // cfg.batch_size)
    total = cfg.epochs * steps
    sched = build_scheduler(opt, OptimConfig(schedule="cosine", warmup_epochs=1, min_lr_ratio=0.0), steps,
                            cfg.epochs)
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    for epoch in range(cfg.epochs):
        model.train()
        bb.stem.eval()
        for stage in bb.blocks[: cfg.frozen_stages]:
            stage.eval()  # frozen BatchNorm keeps ImageNet's statistics
        losses: list[float] = []
        for _ in range(steps):
            pick = rng.choice(n, size=cfg.batch_size, replace=True, p=weights)
            xs, ts = [], []
            for i in pick:
                img, m = _augment(images[i], masks[i], cfg.size, rng, cfg.crop_scale)
                xs.append(_to_tensor(img))
                ts.append(_target(m > 0, int(labels[i])))
            parts = model(xs, ts)
            loss = parts["classification"] + parts["bbox_regression"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.item()))
            bar.update(1)
        log(f"{desc}: epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses):.4f} ({time.perf_counter() - t0:.0f} s)")
    bar.close()
    return model.eval()


@torch.no_grad()
def detect(model: nn.Module, rgb: np.ndarray, size: int) -> dict[str, torch.Tensor]:
    """Detections on one photo squashed to ``size`` px, boxes in that frame."""
    x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    out: dict[str, torch.Tensor] = model([_to_tensor(x)])[0]
    return out


def _fold_figures(y: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, float]:
    import warnings

    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    labels = list(range(num_classes))
    with warnings.catch_warnings():  # a fold's test photos need not cover every class the model calls
        warnings.simplefilter("ignore", UserWarning)
        return {"macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
                # a photo without a detection (-1) is counted as a wrong class, as in the paper
                "balanced_accuracy": float(balanced_accuracy_score(y, np.where(pred < 0, (y + 1) % num_classes,
                                                                               pred))),
                "accuracy": float(accuracy_score(y, pred))}


def run_detect_cv(cfg: DetConfig, spec_path: str | Path, masks_dir: str | Path, out: str | Path,
                  root: str | Path | None = None, log: Log = print) -> Path:
    torch.set_num_threads(max(1, cfg.threads))
    cv2.setNumThreads(1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = load_spec(spec_path, root)
    man = read_manifest(spec)
    classes = [c.code for c in man.taxonomy.head("disease").classes]
    y_all = man.labels["disease"]
    folds = make_folds(y_all, man.groups, man.ids, k=cfg.folds, seed=cfg.seed)
    folds.save(out_dir / "folds.json")
    source = MaskSource.open(masks_dir)
    keep = np.arange(len(man)) if cfg.limit is None else np.arange(min(cfg.limit, len(man)))
    photos: dict[int, np.ndarray] = {}
    masks: dict[int, np.ndarray] = {}
    for i in tqdm(keep, desc="photos and masks", unit="photo", leave=False):
        rgb = load_image(man.paths[i])
        photos[i] = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)
        m = source.load(man.paths[i], rgb.shape[:2]) if source.path_for(man.paths[i]) is not None else None
        if m is not None:
            masks[i] = cv2.resize(m.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
    log(f"detection data: {len(masks)} of {len(keep)} photos have a mask (boxes from their largest region)")
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    fold_figs: list[dict[str, float]] = []
    kept = {int(i) for i in keep}
    for f in range(cfg.folds):
        train = [i for i in folds.train_indices(f) if i in masks and y_all[i] >= 0]
        test = [i for i in folds.test_indices(f) if i in kept and not man.eval_exclude[i] and y_all[i] >= 0]
        done = out_dir / f"fold{f}.pt"
        if done.is_file():
            model = build_detector(cfg, len(classes), pretrained=False)
            model.load_state_dict(torch.load(done, map_location="cpu", weights_only=True))
            model.eval()
            log(f"fold {f + 1}/{cfg.folds}: trained before ({done}), scoring it")
        else:
            model = train_detector(cfg, [photos[i] for i in train], [masks[i] for i in train],
                                   np.asarray([y_all[i] for i in train]), len(classes), cfg.seed + f,
                                   f"fold {f + 1}/{cfg.folds}", log)
            tmp = done.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(done)
        preds, ys = [], []
        for i in tqdm(test, desc=f"fold {f + 1} test", unit="photo", leave=False):
            det = detect(model, photos[i], cfg.size)
            top = top_box(det)
            ref = box_from_mask(masks[i] > 0) if i in masks else None
            scale = 256 / cfg.size
            iou = None
            if top is not None and ref is not None:
                b = top[2]
                iou = box_iou((round(b[0] * scale), round(b[1] * scale), round(b[2] * scale), round(b[3] * scale)),
                              ref)
            pred = -1 if top is None else top[0]
            preds.append(pred)
            ys.append(int(y_all[i]))
            rows.append({"id": man.ids[i], "fold": f, "label": classes[int(y_all[i])],
                         "pred": "" if top is None else classes[pred], "score": "" if top is None else top[1],
                         "box_iou": "" if iou is None else iou,
                         "scores": disease_scores(det, len(classes)).tolist()})
        p, yy = np.asarray(preds), np.asarray(ys)
        figs = _fold_figures(yy, p, len(classes)) | {"no_detection_rate": float(np.mean(p < 0))}
        ious = [r["box_iou"] for r in rows if r["fold"] == f and r["box_iou"] != ""]
        figs["top_box_iou"] = float(np.mean(ious)) if ious else math.nan
        fold_figs.append(figs)
        log(f"fold {f + 1}/{cfg.folds}: " + ", ".join(f"{k} {v:.3f}" for k, v in figs.items()))
    with (out_dir / "oof_detections.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "fold", "label", "pred", "score", "box_iou", *[f"score_{c}" for c in classes]])
        for r in rows:
            w.writerow([r["id"], r["fold"], r["label"], r["pred"], r["score"], r["box_iou"], *r["scores"]])
    result = {"config": asdict(cfg), "spec": str(spec_path), "masks": str(masks_dir), "classes": classes,
              "folds": fold_figs, "summary": summarize_folds(fold_figs), "cv_seconds": time.perf_counter() - t0}
    (out_dir / "detect_cv.json").write_text(json.dumps(to_jsonable(result), indent=1), encoding="utf-8")
    log(f"detection CV done in {result['cv_seconds']:.0f} s: {out_dir}")
    return out_dir


def compare_with_classifier(detect_run: str | Path, oof: str | Path) -> dict[str, Any]:
    """The paper's comparison on the same photos and folds: the detector's top-box class against the
    whole-photo classifier's out-of-fold top-1 (``oof_predictions.h5`` of a ``cv`` run, or a bundle's
    ``.oof.h5``), macro-F1 / BMA / accuracy per fold, mean ± std, and the per-fold difference."""
    import h5py

    run = Path(detect_run)
    res = json.loads((run / "detect_cv.json").read_text(encoding="utf-8"))
    classes = res["classes"]
    det = {}
    with (run / "oof_detections.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            det[r["id"]] = (int(r["fold"]), classes.index(r["label"]), classes.index(r["pred"]) if r["pred"] else -1)
    with h5py.File(oof, "r") as h:
        key = "probs/disease_fused" if "probs/disease_fused" in h else "probs/disease"
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in h["ids"][:]]
        cls_pred = dict(zip(ids, np.asarray(h[key][:]).argmax(1).tolist(), strict=True))
        oof_fold = dict(zip(ids, h["fold"][:].tolist(), strict=True))
    missing = [i for i in det if i not in cls_pred]
    if missing:
        raise ValueError(f"{oof}: no out-of-fold prediction for {len(missing)} detection photos (e.g. {missing[0]})")
    moved = [i for i in det if oof_fold[i] != det[i][0]]
    if moved:
        raise ValueError(f"{oof} was cross-validated on other folds ({len(moved)} photos differ, e.g. {moved[0]})")
    per_fold: dict[str, list[dict[str, float]]] = {"detection": [], "whole_photo": []}
    for f in sorted({v[0] for v in det.values()}):
        ids_f = [i for i, v in det.items() if v[0] == f]
        y = np.asarray([det[i][1] for i in ids_f])
        per_fold["detection"].append(_fold_figures(y, np.asarray([det[i][2] for i in ids_f]), len(classes)))
        per_fold["whole_photo"].append(_fold_figures(y, np.asarray([cls_pred[i] for i in ids_f]), len(classes)))
    diff = [d["macro_f1"] - w["macro_f1"] for d, w in zip(per_fold["detection"], per_fold["whole_photo"], strict=True)]
    return to_jsonable({"n_photos": len(det), "folds": per_fold,
                        "summary": {k: summarize_folds(v) for k, v in per_fold.items()},
                        "macro_f1_difference_per_fold": diff, "macro_f1_difference_mean": float(np.mean(diff))})



def _pct(stat: dict[str, Any], scale: float = 100, digits: int = 1) -> str:
    if stat.get("mean") is None:
        return "n/a"
    std = stat.get("std")
    return f"{scale * stat['mean']:.{digits}f}" + ("" if std is None else f" ± {scale * std:.{digits}f}")


def compare_markdown(cmp: dict[str, Any], detect: dict[str, Any], classifier: str) -> str:
    """The card's table: detection-based against whole-photo classification, same photos and folds."""
    s = cmp["summary"]
    d = detect["summary"]
    lines = ["| Classification | Disease macro-F1 (%) | BMA (%) | Accuracy (%) |", "|---|---|---|---|"]
    lines.append(f"| whole photo ({classifier}, out-of-fold) | {_pct(s['whole_photo']['macro_f1'])} | "
                 f"{_pct(s['whole_photo']['balanced_accuracy'])} | {_pct(s['whole_photo']['accuracy'])} |")
    lines.append(f"| detection: the top-scoring box's class (RetinaNet, Lite{detect['config']['variant']} + FPN) | "
                 f"{_pct(s['detection']['macro_f1'])} | {_pct(s['detection']['balanced_accuracy'])} | "
                 f"{_pct(s['detection']['accuracy'])} |")
    diff = ", ".join(f"{100 * v:+.1f}" for v in cmp["macro_f1_difference_per_fold"])
    lines += ["", f"{cmp['n_photos']} test photos over {len(cmp['macro_f1_difference_per_fold'])} folds. Detection "
              f"minus whole photo, macro-F1 per fold: {diff} (mean {100 * cmp['macro_f1_difference_mean']:+.1f}). "
              f"Photos with no box above the score threshold (counted as wrong): {_pct(d['no_detection_rate'])} %; "
              f"IoU of the top box with the mask's box, where both exist: {_pct(d['top_box_iou'], 1, 3)}."]
    return "\n".join(lines) + "\n"


def write_comparison(detect_run: str | Path, oof: str | Path, label: str | None = None) -> Path:
    """:func:`compare_with_classifier` into ``compare.json`` and the card table ``compare.md`` of the run."""
    run = Path(detect_run)
    cmp = compare_with_classifier(run, oof)
    (run / "compare.json").write_text(json.dumps(to_jsonable(cmp), indent=1), encoding="utf-8")
    detect = json.loads((run / "detect_cv.json").read_text(encoding="utf-8"))
    (run / "compare.md").write_text(compare_markdown(cmp, detect, label or Path(oof).name), encoding="utf-8")
    return run / "compare.md"
