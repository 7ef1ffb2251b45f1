"""Localisation figures of a model against lesion masks (issue 11), per photo, per evaluation and per CV run.

For each photo with a mask: the Grad-CAM of the top predicted disease class (``engine.explain``, the
explained output is ``HEAD_OUTPUTS["disease"]``, i.e. d'), the LSM-selected disease tokens from the
model's own output dict (``selected_disease``, patch-indexed: no prefix offset), scored by
``engine.metrics.localisation``. Photos without a mask are listed with status ``no_mask`` and counted,
never run. The figures are written per photo (CSV, for cards and error analysis) and summarised.
Rows kept out of the accuracy metrics (``eval_exclude``, conflicting duplicate labels) are localised
too: the CAM explains the *predicted* class and the mask does not depend on the label.

- :func:`localise` runs a model over batches of preprocessed photos (any source).
- :func:`photo_batches` feeds photo files through the app's own preprocessing (``engine.preprocess``);
  :func:`pack_batches` feeds pack rows through the evaluation preprocessing (``PackDataset``). Both
  squash the whole photo to the square input, so the mask is mapped the same way in either case.
- :func:`evaluate_localisation` is ``dermviewer-train evaluate --masks``; :func:`run_localisation_cv`
  is ``dermviewer-train localisation-cv``: every fold model of a `cv` run on its own test fold, mean ±
  std over folds in ``localisation_cv.json`` for the model card.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import torch
from torch import nn

from engine.errors import ModelConfigError
from engine.explain import HEAD_OUTPUTS, grad_cam
from engine.imageio import load_image
from engine.masks import MaskSource
from engine.metrics import (
    LocalisationSummary,
    PhotoLocalisation,
    format_mean_std,
    photo_localisation,
    summarize_folds,
    summarize_localisation,
    to_jsonable,
)
from engine.models import ModelConfig
from engine.preprocess import PreprocessConfig, preprocess_batch
from training.config import ExperimentConfig, load_config
from training.data.pack import PackData

__all__ = [
    "LOCALISATION_COLUMNS",
    "LocalisedPhoto",
    "evaluate_localisation",
    "localisation_markdown",
    "localise",
    "pack_batches",
    "photo_batches",
    "run_localisation_cv",
    "thread_budget",
    "write_localisation_csv",
]

Log = Callable[[str], Any]
Batch = tuple[list[str], torch.Tensor, list[tuple[int, int]]]
"""Photo keys (ids or paths), their (B, 3, S, S) input and each photo's (height, width) to read its mask at."""

# (card label, summary key, as a percentage?)
LOCALISATION_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("Grad-CAM pointing game (%)", "pointing_game", True),
    ("Centre prior (%)", "centre_prior", True),
    ("LSM hit rate (%)", "lsm_hit_rate", True),
    ("LSM chance (%)", "lsm_chance", True),
    ("CAM energy / area share (×)", "energy_ratio", False),
)


@dataclass(frozen=True)
class LocalisedPhoto:
    """One photo's figures with what the model said about it (for the per-photo CSV)."""

    figures: PhotoLocalisation
    predicted: str  # the top disease code, the class the CAM explains ("" when not run)
    probability: float


@contextmanager
def thread_budget(threads: int) -> Iterator[None]:
    """torch intra-op and OpenCV threads set to ``threads`` for the block, restored after."""
    before_torch, before_cv2 = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(max(1, int(threads)))
    cv2.setNumThreads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        cv2.setNumThreads(before_cv2)


def _grid_of(model: nn.Module, n_tokens: int) -> tuple[int, int]:
    """The token grid from the model's config, checked against the LSM's score count (no size assumed)."""
    cfg: ModelConfig | None = getattr(model, "cfg", None)
    if cfg is None:  # no config: only a square grid can be inferred from the count
        side = math.isqrt(n_tokens)
        if side * side != n_tokens:
            raise ModelConfigError(f"{n_tokens} LSM scores and no model config to say the token grid")
        return side, side
    gh, gw = (int(v) for v in cfg.grid_size)
    if gh * gw != n_tokens:
        raise ModelConfigError(f"the model gives {n_tokens} LSM scores but its config says a {gh}x{gw} token grid")
    return gh, gw


def localise(
    model: nn.Module,
    batches: Iterable[Batch],
    masks: MaskSource,
    codes: Sequence[str],
    *,
    total: int | None = None,
    threads: int = 1,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    desc: str = "localisation",
) -> list[LocalisedPhoto]:
    """Per-photo localisation figures of ``model`` (eval mode, CPU or its device) over ``batches``.

    Photos whose key has no mask in ``masks`` are recorded as ``no_mask`` without running the model.
    ``should_stop`` is polled between batches; when it returns True the photos done so far are returned.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    output = HEAD_OUTPUTS["disease"]
    results: list[LocalisedPhoto] = []
    try:
        with thread_budget(threads), tqdm(total=total, desc=desc, unit="photo", disable=not progress,
                                          dynamic_ncols=True, leave=False) as bar:
            for keys, x, sizes in batches:
                if should_stop is not None and should_stop():
                    break
                have = [i for i, k in enumerate(keys) if k in masks]
                results.extend(LocalisedPhoto(PhotoLocalisation(k, "no_mask"), "", math.nan)
                               for k in keys if k not in masks)
                if have:
                    results.extend(_localise_batch(model, [keys[i] for i in have], x[have].to(device),
                                                   [sizes[i] for i in have], masks, codes, output))
                bar.update(len(keys))
    finally:
        model.train(was_training)
    return results


def _localise_batch(model: nn.Module, keys: list[str], x: torch.Tensor, sizes: list[tuple[int, int]],
                    masks: MaskSource, codes: Sequence[str], output: str) -> list[LocalisedPhoto]:
    with torch.no_grad():
        out = model(x)
    if output not in out:
        raise ModelConfigError(f"the model has no output {output!r} (outputs: {sorted(out)})")
    probs = torch.softmax(out[output].float(), dim=-1).cpu().numpy()
    top = probs.argmax(axis=1)
    cams = grad_cam(model, x, head="disease", class_index=[int(c) for c in top])
    selected = out.get("selected_disease")
    sel = selected.cpu().numpy() if selected is not None else None
    grid = _grid_of(model, int(out["lsm_disease"].shape[1])) if sel is not None else None
    rows = []
    for i, key in enumerate(keys):
        fig = photo_localisation(key, masks.load(key, sizes[i]), cam=cams[i], selected=None if sel is None else sel[i],
                                 grid=grid, class_index=int(top[i]))
        rows.append(LocalisedPhoto(fig, codes[int(top[i])], float(probs[i, top[i]])))
    return rows


def photo_batches(photos: Sequence[str | Path], pre: PreprocessConfig, batch_size: int = 16) -> Iterator[Batch]:
    """Photo files through the app's preprocessing (``engine.imageio`` + ``engine.preprocess``)."""
    for start in range(0, len(photos), batch_size):
        chunk = [str(p) for p in photos[start : start + batch_size]]
        images = [load_image(p) for p in chunk]
        yield chunk, torch.from_numpy(preprocess_batch(images, pre)), [im.shape[:2] for im in images]


def pack_batches(cfg: ExperimentConfig, data: PackData, rows: np.ndarray, mcfg: ModelConfig,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 batch_size: int = 16) -> Iterator[Batch]:
    """Pack rows through the evaluation preprocessing (``training.run.make_dataset``, ``train=False``)."""
    from training.run import make_dataset

    c = copy.deepcopy(cfg)
    if mean is not None and std is not None:
        c.data.mean, c.data.std = tuple(mean), tuple(std)  # type: ignore[assignment]
    ds = make_dataset(c, data, rows, mcfg, train=False)
    with h5py.File(data.path, "r") as f:  # the photo's size before packing: masks are read at it
        source_size = f["source_size"][()] if "source_size" in f else None
    for start in range(0, len(rows), batch_size):
        items = [ds[k] for k in range(start, min(start + batch_size, len(rows)))]
        idx = [int(it["index"]) for it in items]
        sizes = [(int(source_size[i][0]), int(source_size[i][1])) if source_size is not None else (data.size,) * 2
                 for i in idx]
        yield [data.ids[i] for i in idx], torch.stack([it["image"] for it in items]), sizes


def write_localisation_csv(path: str | Path, photos: Sequence[LocalisedPhoto],
                           extra: Mapping[str, Sequence[Any]] | None = None) -> Path:
    """One row per photo: ``extra`` columns (e.g. fold, bundle) first, then the figures, then the prediction."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    cols = PhotoLocalisation.columns()
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*extra, *cols, "predicted", "probability"])
        for i, p in enumerate(photos):
            d = p.figures.to_dict()
            w.writerow([*(v[i] for v in extra.values()), *("" if d[c] is None else d[c] for c in cols),
                        p.predicted, "" if math.isnan(p.probability) else round(p.probability, 6)])
    return path


def _cell(summary: Mapping[str, Any], key: str, percent: bool) -> str:
    st = summary.get(key)
    digits = 1 if percent else 2
    if isinstance(st, Mapping):  # a FoldStat: mean ± std over folds
        return format_mean_std(st.get("mean"), st.get("std"), percent=percent, digits=digits)
    return format_mean_std(None if st is None else float(st), None, percent=percent, digits=digits)


def _count(summary: Mapping[str, Any], key: str) -> str:
    st = summary.get(key)
    if isinstance(st, Mapping):  # over folds: the total of the folds' counts
        return "n/a" if st.get("mean") is None or not st.get("n") else f"{st['mean'] * st['n']:.0f}"
    return "n/a" if st is None else f"{int(st)}"


def localisation_markdown(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The localisation table: one row per model (a summary dict, or FoldStats over CV folds)."""
    header = "| Model | " + " | ".join(label for label, _, _ in LOCALISATION_COLUMNS) + " | Photos scored | No mask |"
    lines = [header, "|" + "---|" * (len(LOCALISATION_COLUMNS) + 3)]
    for label, summary in rows.items():
        cells = [_cell(summary, key, pct) for _, key, pct in LOCALISATION_COLUMNS]
        counts = [_count(summary, k) for k in ("n_scored", "n_no_mask")]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(counts) + " |")
    return "\n".join(lines) + "\n"


def evaluate_localisation(cfg: ExperimentConfig, bundles: Sequence[Path], masks: MaskSource, run_dir: Path, *,
                          split: Path | None = None, root: str | Path | None = None, threads: int = 1,
                          log: Log = print) -> dict[str, LocalisationSummary]:
    """``evaluate --masks``: each bundle's figures on the pack rows ``run_evaluate`` scored (an ensemble has no
    single Grad-CAM, so every bundle is localised on its own). Writes ``localisation.csv`` and ``.json``."""
    from engine.bundle import load_bundle
    from training.run import ensure_pack

    data = ensure_pack(cfg, root, log)
    rows = _rows(cfg, data, split)
    photos: list[LocalisedPhoto] = []
    labels: list[str] = []
    summaries: dict[str, LocalisationSummary] = {}
    for path in bundles:
        b = load_bundle(path)
        model = b.build_model()
        got = localise(model, pack_batches(cfg, data, rows, b.model_config, b.preprocess.mean, b.preprocess.std,
                                           cfg.data.eval_batch_size),
                       masks, b.taxonomy.head("disease").codes, total=len(rows), threads=threads,
                       progress=cfg.train.progress, desc=f"localisation {Path(path).name}")
        summaries[Path(path).name] = summarize_localisation(p.figures for p in got)
        photos += got
        labels += [Path(path).name] * len(got)
    write_localisation_csv(run_dir / "localisation.csv", photos, {"bundle": labels})
    (run_dir / "localisation.json").write_text(json.dumps(
        {"masks": str(masks.origin), "bundles": {k: v.to_dict() for k, v in summaries.items()}}, indent=1),
        encoding="utf-8")
    log("\n" + localisation_markdown({k: v.to_dict() for k, v in summaries.items()}))
    return summaries


def _rows(cfg: ExperimentConfig, data: PackData, split: Path | None) -> np.ndarray:
    """The rows ``run_evaluate`` scores: the config's limit, then a split file's test (or val) ids."""
    idx = np.arange(len(data) if cfg.data.limit is None else min(cfg.data.limit, len(data)))
    if split is None:
        return idx
    ids = json.loads(Path(split).read_text(encoding="utf-8"))
    wanted = set(ids.get("test") or ids.get("val") or [])
    if not wanted:
        raise ValueError(f"{split}: split file has no 'test' or 'val' ids")
    return np.array([i for i in idx if data.ids[i] in wanted], dtype=np.int64)


def run_localisation_cv(run: Path, masks: MaskSource, *, cfg: ExperimentConfig | None = None,
                        out: str | Path | None = None, root: str | Path | None = None, threads: int = 1,
                        progress: bool = True, log: Log = print) -> Path:
    """Every fold model of a finished `cv` run on its own test fold; ``localisation_cv.json`` holds each
    fold's summary and mean ± std over folds (the card's localisation table), ``localisation.csv`` the
    per-photo figures with their fold. Written to ``out`` (default ``<run>/localisation``)."""
    from training.run import ensure_pack, load_fold_model, load_folds

    run = Path(run)
    if not (run / "folds.json").is_file():
        raise FileNotFoundError(f"{run}: not a `cv` run folder (no folds.json)")
    cfg = cfg if cfg is not None else load_config(run / "config.yaml")
    data = ensure_pack(cfg, root, log)
    folds = load_folds(run / "folds.json", data)
    out_dir = Path(out) if out is not None else run / "localisation"
    out_dir.mkdir(parents=True, exist_ok=True)
    photos: list[LocalisedPhoto] = []
    fold_col: list[int] = []
    fold_summaries: list[dict[str, Any]] = []
    codes = data.taxonomy.head("disease").codes
    for f in range(folds.k):
        log(f"localisation: fold {f + 1}/{folds.k}")
        model, mcfg = load_fold_model(run / f"fold{f}", data.taxonomy)
        te = folds.test_indices(f)
        got = localise(model, pack_batches(cfg, data, te, mcfg, batch_size=cfg.data.eval_batch_size), masks, codes,
                       total=len(te), threads=threads, progress=progress, desc=f"fold {f + 1}/{folds.k}")
        fold_summaries.append(summarize_localisation(p.figures for p in got).to_dict())
        photos += got
        fold_col += [f] * len(got)
    write_localisation_csv(out_dir / "localisation.csv", photos, {"fold": fold_col})
    summary = summarize_folds(fold_summaries)
    pooled = summarize_localisation(p.figures for p in photos).to_dict()
    (out_dir / "localisation_cv.json").write_text(json.dumps(to_jsonable(
        {"run": str(run), "masks": str(masks.origin), "folds": fold_summaries, "summary": summary,
         "pooled": pooled}), indent=1), encoding="utf-8")
    table = localisation_markdown({f"{cfg.name} (CV, {folds.k} folds)": summary})
    (out_dir / "localisation.md").write_text(table, encoding="utf-8")
    log("\n" + table)
    return out_dir
