"""Runs: every fit writes a folder with its resolved config, folds, logs, plots, metrics, checkpoint, bundle.

``run_train`` fits once (optionally holding out a patient-grouped validation split for best-checkpoint
selection); ``run_cv`` does DermImitFormer §3's K-fold protocol (patient-grouped, stratified), reports
Table 2's mean ± std, saves out-of-fold predictions, then fits on all data and exports the bundle.
CV folds are scored with the last epoch: selecting epochs on the test fold would leak it.
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from engine.models import TABLE1_ROWS, ModelConfig, build_model, model_config
from engine.preprocess import PreprocessConfig
from engine.taxonomy import Taxonomy
from training.config import ConfigError, ExperimentConfig, config_to_dict, load_config
from training.data.dataset import class_balanced_weights, make_dataset
from training.data.manifest import read_manifest
from training.data.pack import PackData, pack, read_pack_labels
from training.data.spec import load_spec
from training.data.splits import Folds, grouped_holdout, make_folds
from training.distributed import DistInfo
from training.evaluate import (
    Predictions,
    compute_metrics,
    flat_metrics,
    predict,
    save_predictions_h5,
    table2_markdown,
    write_plots,
)
from training.frozen_prefix import CachedViewDataset, frozen_prefix, prefix_restored, view_cache, view_cache_key
from training.losses import MultiTaskLoss
from training.lsm_mask_loss import CamMaskLoss, LsmMaskLoss, lesion_view_grids, pack_lesions
from training.trainer import Trainer, TrainResult, amp_dtype, resolve_device

__all__ = [
    "FitOutput",
    "build_loss",
    "build_model_from_config",
    "ensure_pack",
    "export_model",
    "fit",
    "make_dataset",
    "make_run_dir",
    "resolve_repo_path",
    "run_cv",
    "run_evaluate",
    "run_export",
    "run_train",
]

Log = Callable[[str], None]


def make_run_dir(cfg: ExperimentConfig, out: str | Path | None = None, suffix: str = "") -> Path:
    """``out`` if given, else ``<output_dir>/<name><suffix>-<timestamp>``; the resolved config is saved in it."""
    path = Path(out) if out else Path(cfg.output_dir) / f"{cfg.name}{suffix}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    return path


def ensure_pack(cfg: ExperimentConfig, root: str | Path | None = None, log: Log = print) -> PackData:
    """The pack named in the config, or a cached one at ``<output_dir>/packs/<spec>_<size>.h5`` (made if absent)."""
    spec = load_spec(resolve_repo_path(cfg.data.spec), root=root)
    default = Path(cfg.output_dir) / "packs" / f"{spec.name}_{cfg.data.pack_size}.h5"
    path = Path(cfg.data.pack) if cfg.data.pack else default
    if not path.is_file():
        manifest = read_manifest(spec)
        log(f"packing {len(manifest)} images from {spec.root} -> {path}")
        report = pack(manifest, path, size=cfg.data.pack_size)
        for p in (*manifest.problems, *report.skipped):
            log(f"  note: {p}")
        log(f"packed {report.written} images in {report.seconds:.1f}s")
    return read_pack_labels(path)


def resolve_repo_path(path: str | Path) -> Path:
    """A config-relative path as given if it exists from the cwd, else relative to the repository root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    repo = Path(__file__).resolve().parents[1] / p
    return repo if repo.exists() else p


def resolve_model_config(cfg: ExperimentConfig, taxonomy: Taxonomy) -> ModelConfig:
    """Registered model + Table 1 row + overrides, with class counts (and context sites) from the taxonomy."""
    over: dict[str, Any] = {}
    if cfg.model.table1_row:
        if cfg.model.table1_row not in TABLE1_ROWS:
            raise ConfigError(f"unknown Table 1 row {cfg.model.table1_row!r}; known: {sorted(TABLE1_ROWS)}")
        over.update(TABLE1_ROWS[cfg.model.table1_row])
    over.update(cfg.model.overrides)
    if "heads" in over:
        over["heads"] = tuple(over["heads"])
    if over.get("context_fields") and "body_part" in over["context_fields"]:
        over.setdefault("context_sites", tuple(c.code for c in taxonomy.head("body_part").classes))
    base = model_config(cfg.model.name, **over)
    return base.replace(num_classes={h: len(taxonomy.head(h)) for h in base.heads})


def build_model_from_config(cfg: ExperimentConfig, taxonomy: Taxonomy) -> tuple[nn.Module, ModelConfig]:
    mcfg = resolve_model_config(cfg, taxonomy)
    model = build_model(mcfg)
    if cfg.model.init_from:
        load_weights(model, cfg.model.init_from)
    return model, mcfg


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Initialise from a bundle (.dmvb), a safetensors file or a checkpoint (.pt); shapes must match.

    A ``.pt`` file is read with ``torch.load(weights_only=True)``: it may come from anywhere, and
    unpickling runs code. One that holds more than tensors and plain values is refused with a
    :class:`ConfigError` saying what to use instead; so is any unreadable or mismatching file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("weights file not found", path)
    state: Any
    if path.suffix == ".dmvb":
        from engine.bundle import load_bundle

        state = load_bundle(path).state_dict
    elif path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"unreadable safetensors file ({exc})", path) from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ConfigError(
                "refused: the checkpoint holds Python objects besides tensors, and loading those would run "
                "code from the file (weights_only). Use a .dmvb bundle, a .safetensors file, or a weights-only "
                "checkpoint such as the run's best.pt", path) from exc
        except (OSError, RuntimeError, EOFError, ValueError) as exc:
            raise ConfigError(f"unreadable checkpoint ({exc.__class__.__name__}: {exc})", path) from exc
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError("holds no state dict (name -> tensor), neither at the top level nor under 'model'", path)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(f"weights do not fit the model: {' '.join(first[:3])}", path) from exc


def build_loss(cfg: ExperimentConfig, data: PackData, heads: tuple[str, ...], train_idx: np.ndarray) -> MultiTaskLoss:
    cw = None
    if cfg.loss.class_weights == "balanced":
        lab = data.labels["disease"][train_idx]
        known = lab[lab >= 0]
        counts = np.bincount(known, minlength=len(data.taxonomy.head("disease"))).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
        cw = torch.tensor(w, dtype=torch.float32)
    elif cfg.loss.class_weights != "none":
        raise ConfigError(f"loss.class_weights must be none or balanced, got {cfg.loss.class_weights!r}")
    return MultiTaskLoss(data.taxonomy, heads, cfg.loss.weights, label_smoothing=cfg.loss.label_smoothing,
                         class_weights=cw)


def _limit(cfg: ExperimentConfig, data: PackData) -> np.ndarray:
    n = len(data) if cfg.data.limit is None else min(cfg.data.limit, len(data))
    return np.arange(n)


@dataclass
class FitOutput:
    model: nn.Module
    model_config: ModelConfig
    result: TrainResult
    val_predictions: Predictions | None


def fit(
    cfg: ExperimentConfig,
    data: PackData,
    train_idx: np.ndarray,
    run_dir: Path | None,
    *,
    val_idx: np.ndarray | None = None,
    dist: DistInfo | None = None,
    resume: str | Path | None = None,
    model: nn.Module | None = None,
    mcfg: ModelConfig | None = None,
    extra_loss: Any = None,
) -> FitOutput:
    """Train one model on ``train_idx``; with ``val_idx`` the best epoch by ``select_metric`` is restored."""
    torch.manual_seed(cfg.train.seed)
    if model is None or mcfg is None:
        model, mcfg = build_model_from_config(cfg, data.taxonomy)
    loss_fn = build_loss(cfg, data, mcfg.heads, train_idx)
    train_set = make_dataset(cfg, data, train_idx, mcfg, train=True)
    weights = None
    if cfg.data.balanced_sampling:
        weights = class_balanced_weights(data.labels["disease"][train_idx], data.masks["disease"][train_idx])
    device = resolve_device(cfg.train.device)
    amp = amp_dtype(cfg.train.amp, device)
    val_fn = None
    if val_idx is not None and len(val_idx):
        val_set = make_dataset(cfg, data, val_idx, mcfg, train=False)

        def val_fn(m: nn.Module) -> dict[str, float]:
            preds = predict(m, val_set, batch_size=cfg.data.eval_batch_size, device=device, amp=amp, loss_fn=loss_fn)
            return flat_metrics(compute_metrics(preds, data))

    lsm_weight, cam_weight = float(cfg.loss.lsm_mask_weight), float(cfg.loss.cam_mask_weight)
    mask_weight = lsm_weight + cam_weight
    if mask_weight > 0:
        _check_lsm_mask_config(cfg, mcfg)
        for weight, cls in ((lsm_weight, LsmMaskLoss), (cam_weight, CamMaskLoss)):
            if weight > 0:
                term = cls(weight=weight)
                extra_loss = term if extra_loss is None else _SumLoss(extra_loss, term)
    if cfg.optim.frozen_stages:
        stages = cfg.optim.frozen_stages
        with frozen_prefix(model, stages) as prefix:
            stem = "lite" + mcfg.backbone.rsplit("lite", 1)[-1]
            cache_dir = resolve_repo_path(cfg.output_dir) / "cache"
            views = view_cache(cfg, data, prefix, stem=stem, img_size=mcfg.img_size, cache_dir=cache_dir)
            lesions = None
            if mask_weight > 0:
                assert cfg.data.lesion_masks is not None
                grid = (int(mcfg.grid_size[0]), int(mcfg.grid_size[1]))
                lesions = lesion_view_grids(
                    cfg, data, pack_lesions(data, resolve_repo_path(cfg.data.lesion_masks)), img_size=mcfg.img_size,
                    grid=grid, views=int(views.shape[0]), cache_dir=cache_dir,
                    key=view_cache_key(cfg, data, stem, mcfg.img_size))
            pixel_val = val_fn

            def cached_val(m: nn.Module) -> dict[str, float]:  # validation runs the whole model on pixels
                assert pixel_val is not None
                with prefix_restored(m, stages, prefix):
                    return pixel_val(m)

            trainer = Trainer(model, loss_fn, CachedViewDataset(train_set, views, lesions), cfg, run_dir,
                              val_fn=cached_val if val_fn is not None else None, dist=dist,
                              sample_weights=weights, extra_loss=extra_loss)
            result = trainer.fit(resume=resume)
            if val_fn is not None and result.best_checkpoint is not None:  # saved without the prefix
                state = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)
                model.load_state_dict(state["model"])
    else:
        trainer = Trainer(model, loss_fn, train_set, cfg, run_dir, val_fn=val_fn, dist=dist,
                          sample_weights=weights, extra_loss=extra_loss)
        result = trainer.fit(resume=resume)
    if val_fn is not None and result.best_checkpoint is not None and not cfg.optim.frozen_stages:
        state = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    val_preds = None
    if val_idx is not None and len(val_idx):
        val_preds = predict(model, make_dataset(cfg, data, val_idx, mcfg, train=False),
                            batch_size=cfg.data.eval_batch_size, device=device, amp=amp)
    return FitOutput(model, mcfg, result, val_preds)


def _check_lsm_mask_config(cfg: ExperimentConfig, mcfg: ModelConfig) -> None:
    """The mask losses need masks, an LSM (lsm_mask_weight), cached views and no CutMix (the grids are per view)."""
    what = "a mask loss (loss.lsm_mask_weight, loss.cam_mask_weight)"
    if not cfg.data.lesion_masks:
        raise ConfigError(f"{what} needs data.lesion_masks (a masks folder or CSV)")
    if cfg.loss.lsm_mask_weight > 0 and not mcfg.lsm:
        raise ConfigError("loss.lsm_mask_weight > 0 needs a model with the Lesion Selection Module (model.lsm)")
    if not cfg.optim.frozen_stages:
        raise ConfigError(f"{what} needs optim.frozen_stages: the lesion grids are computed for the cached views "
                          "(training/lsm_mask_loss.py)")
    if cfg.augment.cutmix_p > 0:
        raise ConfigError(f"{what} cannot be combined with CutMix (augment.cutmix_p): a mixed photo's lesion grid "
                          "is not its views'")


class _SumLoss(nn.Module):
    """Two ``extra_loss`` callables added (e.g. distillation and the LSM-to-mask loss)."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, model: nn.Module, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        result: torch.Tensor = self.a(model, out, batch) + self.b(model, out, batch)
        return result


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def export_model(
    model: nn.Module, mcfg: ModelConfig, cfg: ExperimentConfig, taxonomy: Taxonomy, out_dir: Path, *,
    metrics: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None, log: Log = print,
) -> dict[str, Path]:
    """Bundle (.dmvb) via ``engine.bundle.save_bundle``; ONNX via ``engine.export`` when it is available."""
    from engine.bundle import save_bundle

    pre = PreprocessConfig(img_size=mcfg.img_size, mean=cfg.data.mean, std=cfg.data.std, interpolation="area",
                           tta_hflip=cfg.train.tta_hflip)
    prov = {"config": config_to_dict(cfg), "git_commit": _git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **(provenance or {})}
    paths = {"bundle": save_bundle(out_dir / f"{cfg.name}.dmvb", model.cpu().eval(), model_config=mcfg,
                                   taxonomy=taxonomy, preprocess=pre, name=cfg.name, version="1",
                                   metrics=metrics or {}, provenance=prov)}
    if cfg.train.export_onnx:
        try:
            from engine.export import export_onnx  # type: ignore[import-not-found]
        except ImportError:
            log("engine.export is not available yet: ONNX export skipped")
        else:
            paths["onnx"] = Path(export_onnx(paths["bundle"], out_dir / f"{cfg.name}.onnx"))
    return paths


def run_train(cfg: ExperimentConfig, *, out: str | Path | None = None, root: str | Path | None = None,
              resume: str | Path | None = None, dist: DistInfo | None = None, log: Log = print) -> Path:
    """One fit on all (limited) data, minus a grouped validation split if ``train.val_fraction`` > 0."""
    dist = dist or DistInfo()
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out) if dist.is_main else Path(out or cfg.output_dir)
    idx = _limit(cfg, data)
    tr, va = grouped_holdout(data.labels["disease"], data.groups, idx, cfg.train.val_fraction, cfg.train.seed)
    if dist.is_main:
        (run_dir / "split.json").write_text(json.dumps({"train": [data.ids[i] for i in tr],
                                                        "val": [data.ids[i] for i in va]}), encoding="utf-8")
    fo = fit(cfg, data, tr, run_dir, val_idx=va, dist=dist, resume=resume)
    if not dist.is_main:
        return run_dir
    metrics: dict[str, Any] = {"wall_time_s": fo.result.wall_time_s, "best_epoch": fo.result.best_epoch,
                               "epochs": fo.result.epochs_run}
    if fo.val_predictions is not None:
        metrics["val"] = compute_metrics(fo.val_predictions, data)
        write_plots(run_dir / "plots", fo.val_predictions, data)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    paths = export_model(fo.model, fo.model_config, cfg, data.taxonomy, run_dir,
                         metrics=_headline(metrics.get("val")), log=log)
    log(f"run folder: {run_dir}  bundle: {paths['bundle']}")
    return run_dir


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any]:
    if not metrics:
        return {}
    flat = flat_metrics(metrics)
    keys = ("disease_fused.accuracy", "disease_fused.balanced_accuracy", "disease_fused.macro_f1",
            "disease_fused.weighted_f1", "body_part.accuracy", "attributes.map_class")
    return {k: flat[k] for k in keys if k in flat}


def run_cv(cfg: ExperimentConfig, *, out: str | Path | None = None, root: str | Path | None = None,
           log: Log = print) -> Path:
    """K-fold CV (Table 2 mean ± std, OOF predictions + embeddings), then a final fit on everything."""
    teacher_run = resolve_repo_path(cfg.distill.teacher_run) if cfg.distill.teacher_run else None
    if teacher_run is not None and not (teacher_run / "folds.json").is_file():
        raise ConfigError(f"distill.teacher_run {teacher_run}: not a `cv` run folder (it has no folds.json)")
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out)
    idx = _limit(cfg, data)
    if teacher_run is not None:  # distil each fold from the teacher trained on that fold: same folds
        folds = load_folds(teacher_run / "folds.json", data)
    else:
        folds = make_folds(data.labels["disease"][idx], [data.groups[i] for i in idx], [data.ids[i] for i in idx],
                           k=cfg.cv.folds, seed=cfg.cv.seed)
    folds.save(run_dir / "folds.json")
    t0 = time.perf_counter()
    fold_metrics: list[dict[str, Any]] = []
    parts: list[Predictions] = []
    mcfg: ModelConfig | None = None
    todo = cfg.cv.only_folds if cfg.cv.only_folds is not None else list(range(cfg.cv.folds))
    for f in todo:
        fdir = run_dir / f"fold{f}"
        tr, te = idx[folds.train_indices(f)], idx[folds.test_indices(f)]
        log(f"fold {f + 1}/{cfg.cv.folds}: train {len(tr)} images, test {len(te)}")
        kw = (_student_kwargs(cfg, data, teacher_run / f"fold{f}", log, rows=tr, out_dir=fdir)
              if teacher_run is not None else {})
        fo = fit(cfg, data, tr, fdir, **kw)
        mcfg = fo.model_config
        device = resolve_device(cfg.train.device)
        preds = predict(fo.model, make_dataset(cfg, data, te, mcfg, train=False),
                        batch_size=cfg.data.eval_batch_size, device=device, amp=amp_dtype(cfg.train.amp, device),
                        tta_hflip=cfg.train.tta_hflip)
        preds.fold = np.full(len(te), f)
        m = compute_metrics(preds, data)
        m["wall_time_s"] = fo.result.wall_time_s
        (fdir / "metrics.json").write_text(json.dumps(m, indent=1), encoding="utf-8")
        fold_metrics.append(m)
        parts.append(preds)
        log(f"fold {f + 1}: {json.dumps(_headline(m))}")
    oof = Predictions.concat(parts)
    save_predictions_h5(run_dir / "oof_predictions.h5", oof, data, run=cfg.name, k=cfg.cv.folds)
    write_plots(run_dir / "plots", oof, data)
    if "disease" in oof.probs and "disease_fused" in oof.probs:
        write_plots(run_dir / "plots", oof, data, key="disease")
    summary = {"folds": fold_metrics, "summary": {k: dict(v) for k, v in _summary(fold_metrics).items()},
               "oof": compute_metrics(oof, data), "cv_wall_time_s": time.perf_counter() - t0}
    table = table2_markdown({cfg.name: fold_metrics})
    (run_dir / "table2.md").write_text(table, encoding="utf-8")
    log("\n" + table)
    if cfg.cv.final_fit:
        log(f"final fit on all {len(idx)} images")
        kw = (_student_kwargs(cfg, data, teacher_run / "final", log, rows=idx, out_dir=run_dir / "final")
              if teacher_run is not None else {})
        fo = fit(cfg, data, idx, run_dir / "final", **kw)
        summary["final_wall_time_s"] = fo.result.wall_time_s
        export_model(fo.model, fo.model_config, cfg, data.taxonomy, run_dir,
                     metrics={f"cv.{k}": v for k, v in _headline(summary["oof"]).items()},
                     provenance={"folds": folds.to_dict()["k"], "cv_table": table}, log=log)
    summary["total_wall_time_s"] = time.perf_counter() - t0
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    log(f"run folder: {run_dir}")
    return run_dir


def load_fold_model(fold_dir: Path, taxonomy: Taxonomy, *, wait: bool = False, timeout_s: float = 3 * 3600.0,
                    log: Log = print) -> tuple[nn.Module, ModelConfig]:
    """The model a finished fold (or ``final``) of a `cv` run trained, rebuilt from the run's config.

    With ``wait``, a fold still training is polled until it finishes instead of refused, giving up after
    ``timeout_s`` without a new checkpoint in the teacher run (:func:`training.distill.wait_for_teacher`);
    a refusal that waiting cannot cure (not a `cv` run, unreadable config or checkpoint) is raised at once."""
    from training.distill import wait_for_teacher

    if not wait:
        return _load_finished_fold(fold_dir, taxonomy)
    return wait_for_teacher(lambda: _load_finished_fold(fold_dir, taxonomy), fold_dir, timeout_s=timeout_s, log=log)


def _load_finished_fold(fold_dir: Path, taxonomy: Taxonomy) -> tuple[nn.Module, ModelConfig]:
    from training.distill import TeacherNotReady

    ckpt = fold_dir / "last.pt"
    run_config = fold_dir.parent / "config.yaml"
    if not run_config.is_file():
        raise ConfigError(f"no config.yaml in the teacher run {fold_dir.parent} (it must be a `cv` run folder)",
                          run_config)
    cfg = load_config(run_config)
    if not ckpt.is_file():
        raise TeacherNotReady(f"no checkpoint yet ({fold_dir.parent} must be a finished `cv` run)", ckpt)
    try:
        # our own checkpoint (it holds RNG states, which are not plain tensors), written atomically
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"unreadable checkpoint ({exc.__class__.__name__}: {exc})", ckpt) from exc
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if not isinstance(epoch, int) or epoch > cfg.train.epochs:
        raise ConfigError(f"checkpoint says epoch {epoch!r}, but the run's config.yaml trains "
                          f"{cfg.train.epochs} epochs: not this run's checkpoint", ckpt)
    if epoch < cfg.train.epochs:
        raise TeacherNotReady(f"training stopped at epoch {epoch} of {cfg.train.epochs}; "
                              "let the run finish (or resume it) first", ckpt)
    model, mcfg = build_model_from_config(cfg, taxonomy)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    if cfg.optim.frozen_stages:  # trained with the frozen prefix swapped out: it is the pretrained one
        prefix = {f"{k}" for k in _prefix_keys(model, cfg.optim.frozen_stages)}
        missing = set(model.state_dict()) - set(weights)
        if not missing <= prefix:
            raise ConfigError(f"checkpoint lacks {sorted(missing - prefix)[:5]}...: not this run's model", ckpt)
        weights = {**{k: v for k, v in model.state_dict().items() if k in missing}, **weights}
    model.load_state_dict(weights)
    return model.eval(), mcfg


def _prefix_keys(model: nn.Module, stages: int) -> set[str]:
    """State-dict keys of the frozen prefix (``optim.frozen_stages``) of ``model``."""
    with frozen_prefix(model, stages):
        kept = set(model.state_dict())
    return set(model.state_dict()) - kept


def _student_kwargs(cfg: ExperimentConfig, data: PackData, teacher_dir: Path, log: Log, *,
                    rows: np.ndarray | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """A student seeded from, and distilled against, the teacher that ``teacher_dir`` (a fold of a `cv` run) holds.

    With ``optim.frozen_stages`` the student trains on cached features, not pixels: the teacher's logits
    on each epoch's view of each of ``rows`` are computed once (training/distill_cache.py, kept in ``out_dir``)."""
    from training.distill import DistillLoss, seed_student

    stages = cfg.optim.frozen_stages
    if stages:
        from training.distill_cache import check_cached_distill

        check_cached_distill(cfg)
    # with wait_for_teacher the student runs behind a teacher run that is still training, fold by fold
    teacher, t_mcfg = load_fold_model(teacher_dir, data.taxonomy, wait=cfg.distill.wait_for_teacher,
                                      timeout_s=cfg.distill.wait_timeout_min * 60, log=log)
    student, s_mcfg = build_model_from_config(cfg, data.taxonomy)
    if not stages:
        maps = seed_student(teacher, t_mcfg, student, s_mcfg, keep_blocks=cfg.distill.keep_blocks,
                            keep_head_blocks=cfg.distill.keep_head_blocks)
        log(f"student seeded from {teacher_dir / 'last.pt'} (blocks {maps})")
        return {"model": student, "mcfg": s_mcfg,
                "extra_loss": DistillLoss(teacher, cfg.distill, teacher_size=t_mcfg.img_size)}
    from training.distill_cache import CachedDistillLoss, check_seeded_prefix, prefix_state, teacher_targets

    t_cfg = load_config(teacher_dir.parent / "config.yaml")
    pretrained = prefix_state(student, stages)
    maps = seed_student(teacher, t_mcfg, student, s_mcfg, keep_blocks=cfg.distill.keep_blocks,
                        keep_head_blocks=cfg.distill.keep_head_blocks)
    check_seeded_prefix(student, stages, pretrained, teacher_dir, t_cfg.optim.frozen_stages)
    log(f"student seeded from {teacher_dir / 'last.pt'} (blocks {maps})")
    ckpt = (teacher_dir / "last.pt").stat()
    targets = teacher_targets(
        teacher, t_cfg, t_mcfg, cfg, s_mcfg, data, _limit(cfg, data) if rows is None else rows,
        cache_dir=resolve_repo_path(cfg.output_dir) / "cache",
        out_path=out_dir / "teacher_logits.npz" if out_dir is not None else None,
        teacher_id=f"{(teacher_dir / 'last.pt').resolve()}:{ckpt.st_mtime_ns}:{ckpt.st_size}", log=log)
    return {"model": student, "mcfg": s_mcfg, "extra_loss": CachedDistillLoss(targets, cfg.distill)}


def _summary(fold_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    from engine.metrics import summarize_folds

    return summarize_folds(fold_metrics)


def load_folds(path: str | Path, data: PackData) -> Folds:
    return Folds.load(path, data.ids, data.groups)


def _bundle_predictions(bundles: list[Path], cfg: ExperimentConfig, data: PackData, idx: np.ndarray) -> Predictions:
    """Predictions of one bundle, or the CNN paper's EnsembleNet: probabilities summed over bundles
    (renormalised, so the report's probabilities stay probabilities)."""
    from engine.bundle import load_bundle

    parts = []
    for path in bundles:
        b = load_bundle(path)
        c = copy.deepcopy(cfg)
        c.data.mean, c.data.std = b.preprocess.mean, b.preprocess.std
        parts.append(predict(b.build_model(), make_dataset(c, data, idx, b.model_config, train=False),
                             batch_size=cfg.data.eval_batch_size))
    if len(parts) == 1:
        return parts[0]
    keys = set.intersection(*(set(p.probs) for p in parts))
    return Predictions(parts[0].indices, {k: sum(p.probs[k] for p in parts) / len(parts) for k in keys},
                       np.concatenate([p.embeddings for p in parts], axis=1))


def run_evaluate(cfg: ExperimentConfig, bundles: list[Path], *, split: Path | None = None,
                 out: str | Path | None = None, root: str | Path | None = None, log: Log = print) -> Path:
    """Score bundle(s) on the pack (optionally only a split's test/val ids): metrics, plots, predictions."""
    data = ensure_pack(cfg, root, log)
    run_dir = make_run_dir(cfg, out, "-eval")
    idx = _limit(cfg, data)
    if split is not None:
        ids = json.loads(Path(split).read_text(encoding="utf-8"))
        wanted = set(ids.get("test") or ids.get("val") or [])
        if not wanted:
            raise ConfigError("split file has no 'test' or 'val' ids", split)
        idx = np.array([i for i in idx if data.ids[i] in wanted], dtype=np.int64)
    preds = _bundle_predictions(list(bundles), cfg, data, idx)
    metrics = compute_metrics(preds, data)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    save_predictions_h5(run_dir / "predictions.h5", preds, data, bundles=[str(b) for b in bundles])
    write_plots(run_dir / "plots", preds, data)
    log(json.dumps(_headline(metrics), indent=1))
    log(f"run folder: {run_dir}")
    return run_dir


def run_export(cfg: ExperimentConfig, *, checkpoint: Path | None = None, bundle: Path | None = None,
               out: str | Path | None = None, log: Log = print) -> dict[str, Path]:
    """A bundle (+ ONNX) from a run checkpoint, or ONNX from an existing bundle."""
    out_dir = Path(out) if out else Path(checkpoint or bundle or ".").parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if bundle is not None:
        try:
            from engine.export import export_onnx  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError("ONNX export needs engine.export, which this build does not have yet") from exc
        return {"onnx": Path(export_onnx(bundle, out_dir / (Path(bundle).stem + ".onnx")))}
    from engine.taxonomy import load_taxonomy

    spec = load_spec(resolve_repo_path(cfg.data.spec))
    taxonomy = load_taxonomy(spec.taxonomy)
    c = copy.deepcopy(cfg)
    c.model.init_from = str(checkpoint)
    model, mcfg = build_model_from_config(c, taxonomy)
    return export_model(model, mcfg, cfg, taxonomy, out_dir, provenance={"checkpoint": str(checkpoint)}, log=log)
