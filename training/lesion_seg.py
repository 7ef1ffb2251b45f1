"""Train and cross-validate the lesion finder (issue 15): ``dermviewer-train lesion-cv``.

The network is :class:`engine.models.lesion_seg.LesionSegNet` (ImageNet EfficientNet-Lite encoder, FPN
decoder). It learns from the hand-drawn masks of the data set (PAD-UFES-20: 640 of 666 photos) with
patient-grouped K-fold CV on **the classifier's folds**: :func:`training.data.splits.make_folds` over the
whole manifest with the same seed, so a photo is in the same test fold for the lesion finder as for the
disease model (the lesion-crop comparison depends on that); photos without a mask are left out of training
and scoring, not out of the fold assignment.

Each fold's model is scored on its test fold in the photo's own frame, with the app's own post-processing
(:func:`engine.lesions.find_components`): Dice, IoU, boundary F-score and the box IoU of the main lesion
(:mod:`engine.metrics.segmentation`), per photo in ``lesion_cv.csv`` and as mean ± std over folds in
``lesion_cv.json``. Every test photo's found lesions, masked or not, are kept in ``oof_lesions.json`` (the
out-of-fold boxes the crop classifier is evaluated with), each fold's weights in ``fold<k>.pt``. A final fit
on every masked photo is exported to ONNX with its settings in the file's metadata
(:data:`engine.lesions.META_KEY`): that file is what the app ships.

Loss: binary cross-entropy plus soft Dice. Augmentation: random resized crop, flips, 90° rotations and
brightness/contrast/saturation jitter, on the photo and its mask together.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.imageio import load_image
from engine.lesions import META_KEY, find_components
from engine.masks import MaskSource
from engine.metrics import summarize_folds, to_jsonable
from engine.metrics.segmentation import segmentation_score
from engine.models.lesion_seg import SEG_MEAN, SEG_STD, LesionSegNet, create_lesion_segnet
from training.config import OptimConfig
from training.data.manifest import read_manifest
from training.data.spec import load_spec
from training.data.splits import make_folds
from training.optim import build_scheduler

__all__ = ["SEG_METRICS", "SegConfig", "SegData", "export_finder", "load_seg_data", "rescore_lesion_cv",
           "run_lesion_cv", "score_photos", "threshold_cv", "train_segnet"]

Log = Callable[[str], Any]
SEG_METRICS = ("dice", "iou", "boundary_f", "box_iou")


@dataclass
class SegConfig:
    variant: int = 0  # EfficientNet-Lite variant of the encoder
    size: int = 160  # square network input (6 ms in ONNX Runtime on 2 threads here)
    width: int = 64  # decoder channels
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1.0e-3  # decoder; the pretrained encoder runs at lr * encoder_lr_mult
    encoder_lr_mult: float = 0.3
    weight_decay: float = 1.0e-4
    frozen_encoder_stages: int = 1  # stem and the first stage(s) stay ImageNet's (CPU budget)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    threshold: float = 0.5
    min_area: float = 0.002
    tta: bool = True  # the photo and its mirror image, probabilities averaged (as the classifier runs)
    fill_holes: bool = True  # a lesion is one solid region
    folds: int = 5
    seed: int = 0  # the classifier's cv.seed: the same folds
    final_fit: bool = True
    threads: int = 2
    limit: int | None = None  # first N masked photos (tests)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegData:
    ids: list[str]
    paths: list[Path]
    groups: list[str]
    labels: np.ndarray  # disease class index (the folds' strata)
    has_mask: np.ndarray  # bool (N,)
    images: list[np.ndarray | None]  # RGB at load size, masked photos only
    masks: list[np.ndarray | None]  # bool at load size
    masks_dir: Path


def load_seg_data(spec_path: str | Path, masks_dir: str | Path, root: str | Path | None = None,
                  load_size: int = 256, limit: int | None = None, log: Log = print) -> SegData:
    """The manifest's photos with their masks, photos and masks squashed to ``load_size`` (the crops of
    the augmentation are cut from these)."""
    spec = load_spec(spec_path, root)
    man = read_manifest(spec)
    source = MaskSource.open(masks_dir)
    has = np.array([source.path_for(p) is not None for p in man.paths])
    images: list[np.ndarray | None] = [None] * len(man)
    masks: list[np.ndarray | None] = [None] * len(man)
    todo = np.flatnonzero(has)
    if limit is not None:
        todo = todo[:limit]
        has = np.isin(np.arange(len(man)), todo)
    for i in tqdm(todo, desc="photos and masks", unit="photo", leave=False):
        rgb = load_image(man.paths[i])
        m = source.load(man.paths[i], rgb.shape[:2])
        images[i] = cv2.resize(rgb, (load_size, load_size), interpolation=cv2.INTER_AREA)
        masks[i] = cv2.resize(m.astype(np.uint8), (load_size, load_size), interpolation=cv2.INTER_NEAREST) > 0
    log(f"lesion data: {int(has.sum())} of {len(man)} photos have a mask ({source.origin})")
    return SegData(list(man.ids), list(man.paths), list(man.groups), man.labels["disease"], has, images, masks,
                   Path(masks_dir))


def _augment(rgb: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
             scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    area = h * w * rng.uniform(*scale)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw, ch = min(w, round(math.sqrt(area * ratio))), min(h, round(math.sqrt(area / ratio)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = cv2.resize(rgb[y0:y0 + ch, x0:x0 + cw], (size, size), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask[y0:y0 + ch, x0:x0 + cw].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.5:
        img, m = img[:, ::-1], m[:, ::-1]
    if rng.random() < 0.5:
        img, m = img[::-1], m[::-1]
    k = int(rng.integers(0, 4))
    img, m = np.rot90(img, k), np.rot90(m, k)
    x = img.astype(np.float32)
    x = x * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)  # contrast, brightness
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.8, 1.2)  # saturation
    return np.clip(x, 0, 255), np.ascontiguousarray(m)


def _to_input(batch: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(SEG_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(SEG_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    soft_dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + soft_dice.mean()


def train_segnet(cfg: SegConfig, data: SegData, rows: Sequence[int], seed: int = 0, desc: str = "train",
                 log: Log = print) -> LesionSegNet:
    """Fit one network on ``rows`` (indices of masked photos)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = create_lesion_segnet(cfg.variant, cfg.width, pretrained=True)
    frozen = [*model.stem.parameters()] + [p for s in model.blocks[:cfg.frozen_encoder_stages] for p in s.parameters()]
    frozen_ids = {id(p) for p in frozen}
    for p in frozen:
        p.requires_grad_(False)
    enc = [p for p in model.encoder_parameters() if id(p) not in frozen_ids]
    opt = torch.optim.AdamW([{"params": enc, "lr": cfg.lr * cfg.encoder_lr_mult},
                             {"params": model.decoder_parameters(), "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    rows = np.asarray(rows)
    steps_per_epoch = max(1, len(rows) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = build_scheduler(opt, OptimConfig(schedule="cosine", warmup_epochs=1, min_lr_ratio=0.0), steps_per_epoch,
                            cfg.epochs)  # one epoch of linear warm-up, then cosine to zero
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    for epoch in range(cfg.epochs):
        model.train()
        for stage in model.blocks[:cfg.frozen_encoder_stages]:
            stage.eval()  # frozen BatchNorm keeps ImageNet's statistics
        model.stem.eval()
        order = rng.permutation(rows)
        losses = []
        for s in range(steps_per_epoch):
            pick = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            pairs = [_augment(data.images[i], data.masks[i], cfg.size, rng, cfg.crop_scale) for i in pick]
            x = _to_input(np.stack([p[0] for p in pairs]))
            y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None]
            loss = _loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
        log(f"{desc}: epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses):.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    bar.close()
    return model.eval()


@torch.no_grad()
def _probability(model: LesionSegNet, rgb: np.ndarray, size: int, tta: bool = False) -> np.ndarray:
    x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)[None].astype(np.float32)
    if not tta:
        return torch.sigmoid(model(_to_input(x)))[0, 0].numpy()
    p = torch.sigmoid(model(_to_input(np.concatenate([x, x[:, :, ::-1]]))))[:, 0].numpy()
    return (p[0] + p[1, :, ::-1]) / 2  # as engine.lesions.LesionFinder.probability


def score_photos(model: LesionSegNet, cfg: SegConfig, data: SegData, rows: Sequence[int],
                 desc: str = "score") -> list[dict[str, Any]]:
    """Each photo at its own resolution: the network on the squashed photo, the probability brought back to
    the photo's frame, the app's post-processing, the figures against the photo's own mask."""
    return [_score_probability(data.ids[i], prob, ref, cfg, cfg.threshold)
            for i, prob, ref in _probabilities(model, cfg, data, rows, desc)]


def _probabilities(model: LesionSegNet, cfg: SegConfig, data: SegData, rows: Sequence[int],
                   desc: str) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Each photo's lesion probability in its own frame, with its mask (None for a photo without one)."""
    source = MaskSource.open(data.masks_dir)
    for i in tqdm(list(rows), desc=desc, unit="photo", leave=False):
        rgb = load_image(data.paths[i])
        ref = source.load(data.paths[i], rgb.shape[:2]) if data.has_mask[i] else None
        h, w = rgb.shape[:2]
        yield i, cv2.resize(_probability(model, rgb, cfg.size, cfg.tta), (w, h), interpolation=cv2.INTER_LINEAR), ref


def _score_probability(photo_id: str, prob: np.ndarray, ref: np.ndarray | None, cfg: SegConfig,
                       threshold: float) -> dict[str, Any]:
    h, w = prob.shape
    lesions = find_components(prob, threshold, cfg.min_area, fill=cfg.fill_holes)
    pred = np.zeros((h, w), bool)
    for les in lesions:
        pred |= les.mask
    row: dict[str, Any] = {"id": photo_id, "height": h, "width": w, "n_lesions": len(lesions),
                           "lesions": [les.to_json() for les in lesions]}
    if ref is not None:  # a photo without a mask gets its lesions found, not scored
        row |= segmentation_score(pred, ref).as_dict()
    return row


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in SEG_METRICS} | {
        "n": len(rows), "found_rate": float(np.mean([r["n_lesions"] > 0 for r in rows]))}


def export_finder(model: LesionSegNet, cfg: SegConfig, path: Path, provenance: dict[str, Any]) -> Path:
    """The network with a sigmoid, as ONNX (opset 17) with its settings in the metadata; checked by reading
    it back with :class:`engine.lesions.LesionFinder`."""
    import onnx

    from engine.lesions import LesionFinder

    class WithSigmoid(torch.nn.Module):
        def __init__(self, net: LesionSegNet) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net(x))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    import warnings

    with warnings.catch_warnings():  # the TorchScript exporter on purpose: a plain conv net, opset 17
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export",
                                DeprecationWarning)
        torch.onnx.export(WithSigmoid(model.eval()), torch.zeros(1, 3, cfg.size, cfg.size), str(tmp),
                          input_names=["image"], output_names=["lesion_probability"], opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "batch"}, "lesion_probability": {0: "batch"}})
    proto = onnx.load(str(tmp))
    meta = {"size": cfg.size, "mean": list(SEG_MEAN), "std": list(SEG_STD), "threshold": cfg.threshold,
            "min_area": cfg.min_area, "tta": cfg.tta, "fill_holes": cfg.fill_holes,
            "architecture": f"efficientnet_lite{cfg.variant}+fpn{cfg.width}", **provenance}
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(to_jsonable(meta))
    onnx.save(proto, str(path))
    tmp.unlink(missing_ok=True)
    LesionFinder(path)  # refuses a file the app could not use
    return path


def _write_cv(out_dir: Path, cfg: SegConfig, masks_dir: str | Path, photos: list[dict[str, Any]],
              fold_summaries: list[dict[str, float]], seconds: float) -> dict[str, Any]:
    summary = summarize_folds([{k: s[k] for k in (*SEG_METRICS, "found_rate")} for s in fold_summaries])
    with (out_dir / "lesion_cv.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "fold", "height", "width", *SEG_METRICS, "n_lesions"])
        for r in photos:
            w.writerow([r["id"], r["fold"], r["height"], r["width"],
                        *(f"{r[k]:.4f}" if k in r else "" for k in SEG_METRICS), r["n_lesions"]])
    (out_dir / "oof_lesions.json").write_text(json.dumps(
        {r["id"]: {"fold": r["fold"], "size": [r["height"], r["width"]], "lesions": r["lesions"]} for r in photos},
        indent=0), encoding="utf-8")
    result = {"config": asdict(cfg), "masks": str(masks_dir), "folds": fold_summaries, "summary": summary,
              "pooled": _summary([r for r in photos if "dice" in r]), "cv_seconds": seconds}
    (out_dir / "lesion_cv.json").write_text(json.dumps(to_jsonable(result), indent=1), encoding="utf-8")
    from training.lesion_card import cv_table

    (out_dir / "lesion_cv.md").write_text(cv_table(json.loads(json.dumps(to_jsonable(summary)))), encoding="utf-8")
    return result


def _score_fold(model: LesionSegNet, cfg: SegConfig, data: SegData, test: Sequence[int], f: int,
                log: Log) -> tuple[list[dict[str, Any]], dict[str, float]]:
    got = score_photos(model, cfg, data, test, desc=f"fold {f + 1}/{cfg.folds} test")
    for r in got:
        r["fold"] = f
    summary = _summary([r for r in got if "dice" in r])
    log(f"fold {f + 1}/{cfg.folds}: " + ", ".join(f"{k} {summary[k]:.3f}" for k in SEG_METRICS))
    return got, summary


def _test_rows(cfg: SegConfig, data: SegData, folds: Any, f: int) -> list[int]:
    test = folds.test_indices(f)
    return list(test) if cfg.limit is None else [i for i in test if data.has_mask[i]]


def run_lesion_cv(cfg: SegConfig, spec_path: str | Path, masks_dir: str | Path, out: str | Path,
                  root: str | Path | None = None, log: Log = print) -> Path:
    torch.set_num_threads(max(1, cfg.threads))
    cv2.setNumThreads(1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / "config.json"
    config = json.loads(json.dumps(to_jsonable(asdict(cfg))))
    if any(out_dir.glob("fold*.pt")) and saved.is_file():
        before = json.loads(saved.read_text(encoding="utf-8"))
        differ = sorted(k for k in set(before) | set(config) if k != "threads" and before.get(k) != config.get(k))
        if differ:
            raise ValueError(f"{out_dir} holds folds of another configuration ({', '.join(differ)}); use a new --out")
    saved.write_text(json.dumps(config, indent=1), encoding="utf-8")
    data = load_seg_data(spec_path, masks_dir, root, limit=cfg.limit, log=log)
    folds = make_folds(data.labels, data.groups, data.ids, k=cfg.folds, seed=cfg.seed)
    folds.save(out_dir / "folds.json")
    t0 = time.perf_counter()
    photos: list[dict[str, Any]] = []
    fold_summaries = []
    for f in range(cfg.folds):
        done = out_dir / f"fold{f}.pt"
        if done.is_file():  # a run restarted in the same folder: a finished fold is scored, not trained again
            model = _fold_model(out_dir, cfg, done.name)
            log(f"fold {f + 1}/{cfg.folds}: trained before ({done}), scoring it")
        else:
            train = [i for i in folds.train_indices(f) if data.has_mask[i]]
            model = train_segnet(cfg, data, train, seed=cfg.seed + f, desc=f"fold {f + 1}/{cfg.folds}", log=log)
            tmp = done.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(done)  # whole or absent: a kill mid-save leaves no half fold behind
        got, summary = _score_fold(model, cfg, data, _test_rows(cfg, data, folds, f), f, log)
        photos += got
        fold_summaries.append(summary)
    result = _write_cv(out_dir, cfg, masks_dir, photos, fold_summaries, time.perf_counter() - t0)
    if cfg.final_fit:
        rows = list(np.flatnonzero(data.has_mask))
        model = train_segnet(cfg, data, rows, seed=cfg.seed + 100, desc="final fit", log=log)
        torch.save(model.state_dict(), out_dir / "final.pt")
        _export_final(model, cfg, out_dir, result, len(rows), len(data.ids))
    log(f"lesion CV done in {time.perf_counter() - t0:.0f} s: {out_dir}")
    return out_dir


def _export_final(model: LesionSegNet, cfg: SegConfig, out_dir: Path, result: dict[str, Any], n_masked: int,
                  n_photos: int) -> Path:
    return export_finder(model, cfg, out_dir / "lesion_finder.onnx",
                         {"run": out_dir.name, "trained_on": f"{n_masked} masked photos of {n_photos}",
                          "cv": {k: result["summary"][k] for k in SEG_METRICS}})


def _saved_config(run: Path) -> SegConfig:
    saved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    return SegConfig(**{k: (tuple(v) if k == "crop_scale" else v) for k, v in saved.items()
                        if k in SegConfig.__dataclass_fields__})


def _fold_model(run: Path, cfg: SegConfig, name: str) -> LesionSegNet:
    model = create_lesion_segnet(cfg.variant, cfg.width, pretrained=False)
    model.load_state_dict(torch.load(run / name, map_location="cpu", weights_only=True))
    return model.eval()


def rescore_lesion_cv(run: str | Path, spec_path: str | Path, masks_dir: str | Path, out: str | Path, *,
                      tta: bool = True, fill_holes: bool = True, root: str | Path | None = None,
                      log: Log = print) -> Path:
    """A finished ``lesion-cv`` run's fold models scored again with other post-processing (no training), on the
    run's own folds; the final model is exported again with that post-processing in its metadata."""
    run, out_dir = Path(run), Path(out)
    cfg = _saved_config(run)
    cfg.tta, cfg.fill_holes = tta, fill_holes
    torch.set_num_threads(max(1, cfg.threads))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(to_jsonable(asdict(cfg)), indent=1), encoding="utf-8")
    data = load_seg_data(spec_path, masks_dir, root, limit=cfg.limit, log=log)
    from training.data.splits import Folds

    folds = Folds.load(run / "folds.json", data.ids, data.groups)
    t0 = time.perf_counter()
    photos: list[dict[str, Any]] = []
    fold_summaries = []
    for f in range(cfg.folds):
        got, summary = _score_fold(_fold_model(run, cfg, f"fold{f}.pt"), cfg, data, _test_rows(cfg, data, folds, f), f,
                                   log)
        photos += got
        fold_summaries.append(summary)
    result = _write_cv(out_dir, cfg, masks_dir, photos, fold_summaries, time.perf_counter() - t0)
    result["rescored_from"] = str(run)
    if (run / "final.pt").is_file():
        _export_final(_fold_model(run, cfg, "final.pt"), cfg, out_dir, result, int(data.has_mask.sum()), len(data.ids))
    return out_dir


def threshold_cv(run: str | Path, spec_path: str | Path, masks_dir: str | Path, out: str | Path,
                 thresholds: Sequence[float], *, root: str | Path | None = None, log: Log = print) -> Path:
    """The probability threshold chosen without looking at the photos it is scored on: a finished run's fold
    models map each test photo once; fold ``f`` is then scored at the threshold that maximises the mean Dice
    of the *other* folds' test photos (leave one fold out, so no photo decides its own threshold). The final
    model is exported with the threshold that maximises the mean Dice over every fold's test photos.

    Writes ``lesion_cv.json`` / ``.csv`` / ``.md`` (the nested figures, in ``lesion-cv``'s format, for the card),
    ``threshold_cv.json`` (each threshold's per-fold Dice and each fold's choice) and ``lesion_finder.onnx``."""
    run, out_dir = Path(run), Path(out)
    cfg = _saved_config(run)
    if not thresholds or any(not 0.0 < t < 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie strictly between 0 and 1, got {list(thresholds)}")
    torch.set_num_threads(max(1, cfg.threads))
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_seg_data(spec_path, masks_dir, root, limit=cfg.limit, log=log)
    from training.data.splits import Folds

    folds = Folds.load(run / "folds.json", data.ids, data.groups)
    t0 = time.perf_counter()
    rows: dict[float, list[list[dict[str, Any]]]] = {t: [] for t in thresholds}
    for f in range(cfg.folds):
        model = _fold_model(run, cfg, f"fold{f}.pt")
        per_t: dict[float, list[dict[str, Any]]] = {t: [] for t in thresholds}
        with torch.no_grad():
            for i, prob, ref in _probabilities(model, cfg, data, _test_rows(cfg, data, folds, f), f"fold {f + 1}"):
                for t in thresholds:
                    per_t[t].append(_score_probability(data.ids[i], prob, ref, cfg, t) | {"fold": f})
        for t in thresholds:
            rows[t].append(per_t[t])
    dice = {t: [float(np.mean([r["dice"] for r in fold if "dice" in r])) for fold in rows[t]] for t in thresholds}
    chosen = []
    for f in range(cfg.folds):
        others = {t: float(np.mean([d for g, d in enumerate(dice[t]) if g != f])) for t in thresholds}
        chosen.append(max(thresholds, key=lambda t: (others[t], -abs(t - cfg.threshold))))
    photos = [r for f in range(cfg.folds) for r in rows[chosen[f]][f]]
    summaries = [_summary([r for r in rows[chosen[f]][f] if "dice" in r]) for f in range(cfg.folds)]
    final_t = max(thresholds, key=lambda t: (float(np.mean(dice[t])), -abs(t - cfg.threshold)))
    cfg.threshold = final_t
    result = _write_cv(out_dir, cfg, masks_dir, photos, summaries, time.perf_counter() - t0)
    choice = {"run": str(run), "thresholds": list(thresholds), "dice_per_fold": {str(t): dice[t] for t in thresholds},
              "chosen_per_fold": chosen, "final_threshold": final_t}
    (out_dir / "threshold_cv.json").write_text(json.dumps(to_jsonable(choice), indent=1), encoding="utf-8")
    (out_dir / "threshold_cv.md").write_text(_threshold_markdown(choice), encoding="utf-8")
    (out_dir / "config.json").write_text(json.dumps(to_jsonable(asdict(cfg)), indent=1), encoding="utf-8")
    if (run / "final.pt").is_file():
        _export_final(_fold_model(run, cfg, "final.pt"), cfg, out_dir, result, int(data.has_mask.sum()),
                      len(data.ids))
    log(f"thresholds per fold {chosen}, final {final_t}: {out_dir}")
    return out_dir


def _threshold_markdown(choice: dict[str, Any]) -> str:
    ts = choice["thresholds"]
    dice = choice["dice_per_fold"]
    lines = ["| Threshold | Dice, mean over folds | Dice per fold |", "|---|---|---|"]
    for t in ts:
        d = dice[str(t)]
        lines.append(f"| {t:g} | {np.mean(d):.3f} | {', '.join(f'{v:.3f}' for v in d)} |")
    chosen = ", ".join(f"{t:g}" for t in choice["chosen_per_fold"])
    return "\n".join(lines) + (f"\n\nChosen per fold on the other folds' test photos: {chosen}; the shipped model "
                               f"(fitted on every masked photo) uses {choice['final_threshold']:g}.\n")
