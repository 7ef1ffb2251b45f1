"""Experiment configuration: dataclass defaults overridden by YAML (``extends:`` chains allowed).

Every run saves the *resolved* config (``config.yaml`` in the run folder), so a result can always be
traced to the exact settings. Unknown keys are errors, not silently ignored: a typo in a YAML file
would otherwise train the wrong experiment for hours.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DermViewerError

__all__ = [
    "AugmentConfig",
    "CVConfig",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelSection",
    "OptimConfig",
    "RobustnessConfig",
    "TrainConfig",
    "config_to_dict",
    "load_config",
    "merge_dicts",
    "parse_override",
]


class ConfigError(DermViewerError):
    """A config file is malformed, names an unknown key or has a value of the wrong type."""


@dataclass
class ModelSection:
    """A registered model name (``engine.models``) plus ``ModelConfig`` overrides or a Table 1 row."""

    name: str = "dermimitformer_lite0"
    table1_row: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a bundle (.dmvb) or checkpoint (.pt) whose weights start training


@dataclass
class DataConfig:
    spec: str = "configs/data/pad_ufes_20.yaml"
    pack: str | None = None  # HDF5 pack; None = pack on the fly into the run folder
    pack_size: int = 256
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    balanced_sampling: bool = False  # class-balanced sampling on the disease label
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    limit: int | None = None  # use only the first N packed images (smoke tests)
    lesion_masks: str | None = None  # masks folder or CSV (engine.masks.MaskSource) for loss.lsm_mask_weight


@dataclass
class AugmentConfig:
    """Train-time augmentation; multitask-lesion paper scale jittering, DermImitFormer CutMix."""

    crop: str = "rrc"  # "rrc" (random resized crop) | "scale_jitter" | "none"
    rrc_scale: tuple[float, float] = (0.35, 1.0)
    rrc_ratio: tuple[float, float] = (0.75, 1.3333)
    scale_jitter: tuple[float, float] = (1.14, 2.14)  # short side / img_size ([256, 480] for 224)
    hflip: float = 0.5
    vflip: float = 0.5
    rotation: float = 30.0  # degrees, uniform in [-r, r]
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    cutmix_p: float = 0.5
    cutmix_alpha: float = 0.3
    corruptions: list[str] = field(default_factory=list)  # engine.corrupt names (robustness training)
    corruption_p: float = 0.0
    corruption_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    context_drop_p: float = 0.3  # clinical context: each known field dropped with this probability
    context_drop_all_p: float = 0.25  # ... and the whole context with this one (photo-only steps)


@dataclass
class LossConfig:
    """DermImitFormer Eq. 5-7 with per-task weights; keys: disease, disease_fused, body_part, attributes."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"disease": 1.0, "disease_fused": 1.0, "body_part": 1.0, "attributes": 1.0}
    )
    label_smoothing: float = 0.0
    class_weights: str = "none"  # "none" | "balanced" (inverse frequency on the disease head)
    # Issue 11: weight of the LSM-to-mask loss (training/lsm_mask_loss.py) on photos with a lesion mask
    # (data.lesion_masks); 0 = off. Needs optim.frozen_stages (the lesion grids ride with the cached views).
    lsm_mask_weight: float = 0.0
    # ... and of the CAM-to-mask loss (the true class's HiResCAM of the cached features pulled onto the lesion)
    cam_mask_weight: float = 0.0


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd" | "adamw"
    lr: float = 0.003
    momentum: float = 0.95
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr_mult: float = 1.0  # discriminative LR: backbone lr = lr * mult
    schedule: str = "cosine"  # "cosine" | "sgdr" | "constant"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    sgdr_t0_epochs: float = 1.0
    sgdr_t_mult: int = 2
    freeze_backbone_epochs: int = 0  # two-phase fine-tune: heads only for this many epochs
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes frozen for the whole run
    # EfficientNet stem + the first N stages frozen and trained on cached augmented views
    # (training.frozen_prefix): the same optimisation as online augmentation, for a fraction of the compute
    frozen_stages: int = 0
    frozen_views: int = 0  # augmented views cached per photo, cycled over the epochs (0: one per epoch)


@dataclass
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    amp: str = "auto"  # "auto" | "bf16" | "fp16" | "none"
    grad_clip: float | None = 1.0
    freeze_bn_stats: bool = False  # BatchNorm in eval mode (small batches, DDP on CPU)
    val_fraction: float = 0.0  # patient-grouped validation split for best-checkpoint selection
    select_metric: str = "disease_fused.balanced_accuracy"
    tta_hflip: bool = False  # CV test folds scored with the mean over the photo and its mirror image
    log_every: int = 10
    max_steps_per_epoch: int | None = None
    threads: int | None = None
    progress: bool = True
    device: str = "auto"
    export_onnx: bool = True


@dataclass
class CVConfig:
    folds: int = 5
    seed: int = 0
    final_fit: bool = True
    only_folds: list[int] | None = None


@dataclass
class DistillConfig:
    """SkinDistilViT §3-4: kept blocks, soft-CE weight 0.5 and temperature; cascading/FCViT options."""

    keep_blocks: list[int] | None = None  # None: every other block (paper: 0,2,4,7,9,11 of 12)
    keep_head_blocks: list[int] | None = None  # teacher head blocks that seed a shallower student's heads
    teacher_run: str | None = None  # a `cv` run folder: `cv` then distils each fold from that fold's teacher
    wait_for_teacher: bool = False  # teacher run still training: wait for each fold's teacher to finish
    wait_timeout_min: float = 180.0  # ... giving up once the teacher run wrote no checkpoint for this long
    alpha: float = 0.5
    temperature: float = 2.0
    hidden_cosine: float = 0.0
    logit_mse: float = 0.0
    min_depth: int = 1
    fcvit_weights: str = "uniform"
    latency_batches: int = 5


@dataclass
class RobustnessConfig:
    """Mishra et al. §2.3: S&P (5 %, 3:1) and a 5x5 Gaussian blur; severity sweeps over levels 1-5."""

    corruptions: list[str] = field(default_factory=lambda: ["salt_and_pepper", "gaussian_blur"])
    table_levels: dict[str, int] = field(default_factory=lambda: {"salt_and_pepper": 5, "gaussian_blur": 3})
    sweep_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    train_corruption: str = "salt_and_pepper"
    seed: int = 0


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    description: str = ""
    output_dir: str = "runs"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    ensemble: list[str] = field(default_factory=list)  # member configs (CNN paper: sum of probabilities)


def merge_dicts(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge, everything else in ``over`` replaces ``base``."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "overrides":
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError("config 'extends' chain loops", path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path) from exc
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping at the top level", path)
    parent = data.pop("extends", None)
    if parent:
        base = _read_yaml((path.parent / parent), (*seen, path))
        data = merge_dicts(base, data)
    return data


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        elem = args[0] if args else Any
        return tuple(_coerce(elem, v, where) for v in value)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, where) for v in value] if args else list(value)
    if origin is dict or tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(known)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults <- YAML file (following ``extends``) <- ``overrides`` (a nested dict, e.g. from the CLI)."""
    data: dict[str, Any] = {} if path is None else _read_yaml(Path(path))
    if overrides:
        data = merge_dicts(data, overrides)
    return _build(ExperimentConfig, data, "")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML-safe dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def parse_override(text: str) -> dict[str, Any]:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out
