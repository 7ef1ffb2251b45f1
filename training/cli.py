"""``dermviewer-train``: pack | train | cv | lr-find | distill | evaluate | robustness | localisation-cv |
context-cv | export | ship.

Every subcommand takes an experiment YAML (``configs/*.yaml``) and ``--set section.key=value``
overrides; every run writes a folder (``--out``, default ``runs/<name>-<time>``). Bad specs, missing
columns and unreadable images are reported clearly (images are skipped, the run goes on); a real
failure exits non-zero (2 for a usage/data/config error, 1 for anything unexpected).

Multi-GPU / multi-node: ``torchrun --nproc_per_node=4 -m training.cli train configs/paper_dermimitformer.yaml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    if config_required:
        p.add_argument("config", type=Path, help="experiment YAML, e.g. configs/cpu_default.yaml")
    else:
        p.add_argument("config", type=Path, nargs="?", default=None, help="experiment YAML (default: built-in)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: <output_dir>/<name>-<time>)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _lesion_net_args(p: argparse.ArgumentParser, *, out: str, size: int, epochs: int, batch_size: int, threads: int,
                     limit_help: str, lr: float = 1e-3, frozen_stages: int = 1) -> None:
    """The arguments ``lesion-cv`` and ``detect-cv`` share: data, masks, encoder, input size, schedule, folds."""
    p.add_argument("--spec", type=Path, default=Path("configs/data/pad_ufes_20.yaml"), help="dataset spec YAML")
    p.add_argument("--masks", type=Path, required=True, metavar="DIR|CSV", help="lesion masks (folder or CSV)")
    p.add_argument("--out", type=Path, default=Path(out), help="run folder")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")
    p.add_argument("--variant", type=int, default=0, help="EfficientNet-Lite encoder variant (0, 1 or 2)")
    p.add_argument("--size", type=int, default=size, help=f"square network input (default {size})")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="fold seed: the classifier's cv.seed gives its folds")
    p.add_argument("--threads", type=int, default=threads, help=f"torch threads (default {threads})")
    p.add_argument("--limit", type=int, default=None, help=limit_help)
    p.add_argument("--frozen-stages", type=int, default=frozen_stages, metavar="N",
                   help=f"encoder stages kept at ImageNet's weights after the stem, which always is (default "
                        f"{frozen_stages})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dermviewer-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("pack", help="decode, resize and write a dataset into one HDF5 file")
    p.add_argument("spec", type=Path, help="dataset spec YAML, e.g. configs/data/pad_ufes_20.yaml")
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument("--size", type=int, default=256, help="square side of the stored images (default 256)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--limit", type=int, default=None, help="pack only the first N rows (smoke tests)")

    p = sub.add_parser("train", help="fit one model (torchrun-aware) and export its bundle")
    _common(p)
    p.add_argument("--resume", type=Path, default=None, help="last.pt of an interrupted run (exact resume)")

    p = sub.add_parser("cv", help="K-fold CV grouped by patient (Table 2 mean ± std, OOF HDF5) + final fit")
    _common(p)

    p = sub.add_parser("lr-find", help="LR range test: saves lr_find.png and suggests a learning rate")
    _common(p)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--start-lr", type=float, default=1e-6)
    p.add_argument("--end-lr", type=float, default=1.0)

    p = sub.add_parser("distill", help="SkinDistilViT student, FCViT per-layer heads or cascading distillation")
    _common(p)
    p.add_argument("--mode", choices=("student", "cascade", "fcvit"), default="student")
    p.add_argument("--teacher", type=Path, default=None, help="teacher bundle (.dmvb) or checkpoint (.pt)")

    p = sub.add_parser("evaluate", help="score bundle(s) on a pack: metrics, plots, predictions HDF5; "
                                        "several --bundle = sum-of-probabilities ensemble")
    _common(p, config_required=False)
    p.add_argument("--bundle", type=Path, action="append", required=True, help="model bundle (.dmvb), repeatable")
    p.add_argument("--split", type=Path, default=None,
                   help="JSON with a 'test' (or 'val') id list, e.g. a run's split.json; default: every image")
    _mask_args(p, required=False)
    p.add_argument("--cache", type=Path, default=None, metavar="DIR|FILE.h5",
                   help="instead of metrics: fill the research mode's evaluation cache for the data spec's photos "
                        "(a folder, named as the app names it, e.g. the app's cache folder's evaluations/; or a .h5 "
                        "file); under torchrun each process takes a disjoint slice; cached photos are skipped")
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                   help="with --cache: the runtime the app's 'backend' setting names (part of the cache key; "
                        "default onnx, the app's default)")
    p.add_argument("--device", default="cpu", help="with --cache: cpu, cuda or auto (default cpu)")
    p.add_argument("--batch-size", type=int, default=16, help="with --cache: photos per batch (default 16)")

    p = sub.add_parser("robustness", help="Table 5: clean / S&P / blur tests, corrupted training, sweeps")
    _common(p)
    p.add_argument("--bundle", type=Path, default=None, help="also evaluate this trained bundle")
    p.add_argument("--no-train", action="store_true", help="only evaluate --bundle; train no models")

    p = sub.add_parser("robustness-cv", help="Table 5 on CV: each fold model of `cv` runs on clean/S&P/blur folds")
    _common(p)
    p.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR",
                   help="a finished `cv` run and its train status, e.g. clean=runs/cpu_default_cv (repeatable)")
    p.add_argument("--no-sweep", action="store_true", help="only the Table 5 levels, no severity sweep")

    p = sub.add_parser("context-cv", help="photo-only vs photo-plus-context figures of a context model's `cv` run, "
                                          "under the protocol where a field's absence carries no label")
    p.add_argument("run", type=Path, help="a finished `cv` run folder of a model that takes clinical context")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the run's config.yaml, e.g. --set train.tta_hflip=false")
    p.add_argument("--seeds", type=int, default=3, help="random field-drop draws averaged per fold (default 3)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/context_cv)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("localisation-cv", help="localisation figures (Grad-CAM pointing game, LSM hit rate, CAM "
                                               "energy) of each fold model of a `cv` run on its own test fold")
    p.add_argument("run", type=Path, help="a finished `cv` run folder")
    _mask_args(p, required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the run's config.yaml, e.g. --set data.pack=runs/packs/x.h5")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/localisation)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("lesion-cv", help="lesion finder: K-fold CV on the lesion masks (the classifier's folds), "
                                         "Dice/IoU/boundary F/box IoU per fold, final fit exported to ONNX")
    _lesion_net_args(p, out="runs/lesion_finder", size=160, epochs=10, batch_size=16, threads=2,
                     limit_help="only the first N masked photos (smoke runs)")
    p.add_argument("--no-final-fit", action="store_true", help="CV only: no model on every photo, no ONNX file")
    p.add_argument("--no-tta", action="store_true", help="score without the mirror-image average")
    p.add_argument("--keep-holes", action="store_true", help="do not fill holes inside found regions")
    p.add_argument("--thresholds", type=float, nargs="+", default=None, metavar="T",
                   help="with --rescore: choose the probability threshold among these, for each fold on the other "
                        "folds' test photos (leave one fold out), and export the final model with the overall best")
    p.add_argument("--rescore", type=Path, default=None, metavar="RUN",
                   help="no training: score RUN's fold models again (with --no-tta / --keep-holes as given) into "
                        "--out, and export RUN's final model again")

    p = sub.add_parser("detect-compare", help="a finished detect-cv run against a whole-photo classifier's "
                                              "out-of-fold predictions on the same photos and folds")
    p.add_argument("run", type=Path, help="a finished `detect-cv` run folder")
    p.add_argument("oof", type=Path, help="the classifier's oof_predictions.h5 (a cv run's) or a bundle's .oof.h5")
    p.add_argument("--label", default=None, help="the classifier's name in the table (default: the file name)")

    p = sub.add_parser("ensemble-oof", help="summed-probability ensembles of finished cv runs from their out-of-fold "
                                            "predictions (each run alone and every combination), Table 2 form")
    p.add_argument("runs", type=Path, nargs="+", help="finished `cv` run folders, cross-validated on the same folds")
    p.add_argument("--out", type=Path, required=True, help="output folder (ensembles.md, ensembles.json)")
    p.add_argument("--max-size", type=int, default=None, help="largest combination (default: all runs)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")

    p = sub.add_parser("detect-cv", help="detection-based classification (He et al.): RetinaNet on the Lite stem, "
                                         "boxes from the lesion masks, K-fold CV on the classifier's folds; each "
                                         "photo's diagnosis is its top-scoring box's class")
    _lesion_net_args(p, out="runs/lesion_detector", size=256, epochs=10, batch_size=8, threads=1, lr=5e-4,
                     frozen_stages=2, limit_help="only the first N photos of the manifest (smoke runs)")
    p.add_argument("--encoder-lr-mult", type=float, default=0.1, help="the encoder's learning rate as a share of --lr")
    p.add_argument("--no-balanced", action="store_true",
                   help="draw photos uniformly instead of inversely to their class's frequency")
    p.add_argument("--compare", type=Path, default=None, metavar="OOF_H5",
                   help="also score this whole-photo classifier's out-of-fold predictions (a cv run's "
                        "oof_predictions.h5 or a bundle's .oof.h5) on the same photos and folds")

    p = sub.add_parser("lesion-crops", help="lesion-centred copies of a data set from a `lesion-cv` run's "
                                            "out-of-fold boxes, with their manifest and spec (for `cv --set`)")
    p.add_argument("lesion_run", type=Path, help="a finished `lesion-cv` run folder (its oof_lesions.json)")
    p.add_argument("--spec", type=Path, default=Path("configs/data/pad_ufes_20.yaml"), help="dataset spec YAML")
    p.add_argument("--out", type=Path, default=Path("runs/lesion_crops"), help="output folder")
    p.add_argument("--margin", type=float, default=None, help="margin around the box (default: the app's)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (overrides the spec's root)")

    p = sub.add_parser("lesion-crop-compare", help="whole photo vs lesion crop vs both: disease macro-F1 and BMA "
                                                   "per fold from two `cv` runs on the same folds")
    p.add_argument("whole_oof", type=Path, help="the whole-photo run's oof_predictions.h5 (or a shipped .oof.h5)")
    p.add_argument("crop_run", type=Path, help="the `cv` run on the lesion crops")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: CROP_RUN/crop_compare)")
    p.add_argument("--lesion-run", type=Path, default=None, help="the `lesion-cv` run (for --originals)")
    p.add_argument("--originals", type=Path, default=None, metavar="DIR",
                   help="full-resolution originals folder with originals.csv (PAD-UFES-20: originals/)")

    p = sub.add_parser("export", help="bundle (+ ONNX) from a training checkpoint, or ONNX from a bundle")
    _common(p, config_required=False)
    p.add_argument("--checkpoint", type=Path, default=None, help="best.pt / last.pt of a run (needs the config)")
    p.add_argument("--bundle", type=Path, default=None, help="existing bundle to convert to ONNX")

    p = sub.add_parser("ship", help="copy a CV run's final model (fp16), OOF predictions and metrics into "
                                    "resources/models and write its model card from the run's metrics")
    p.add_argument("run", type=Path, help="a `cv` run folder with a final fit")
    p.add_argument("--name", default="default", help="file stem in the destination (default: default)")
    p.add_argument("--title", default=None, help="card title")
    p.add_argument("--model-name", default=None, help="the name the app shows (default: --name)")
    p.add_argument("--dest", type=Path, default=Path("resources/models"))
    p.add_argument("--command", dest="reproduce", required=True, help="the exact command that made the run")
    p.add_argument("--description", default="", help="a paragraph for the card")
    p.add_argument("--ablation", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="a CV run on the same folds for the Table 1 section (repeatable)")
    p.add_argument("--section", action="append", default=[], metavar="TITLE=FILE.md",
                   help="an extra card section read from a Markdown file (repeatable)")
    p.add_argument("--failure-mode", action="append", default=[], help="a known failure mode (repeatable)")
    return parser


def _mask_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--masks", type=Path, required=required, default=None, metavar="DIR|CSV",
                   help="lesion masks: a folder of <stem>.png, or a CSV with a mask column (e.g. masks/masks.csv); "
                        "adds the localisation table (Grad-CAM pointing game, LSM hit rate, CAM energy)")
    p.add_argument("--mask-column", default="mask", help="the CSV's mask path column (default: mask)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads for the localisation (default 1)")


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        label, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{what} must look like LABEL=VALUE, got {item!r}")
        out.append((label, value))
    return out


def _cmd_ship(args: argparse.Namespace) -> int:
    from training.card import CardInputs, ship_model

    inp = CardInputs(
        name=args.name, title=args.title or args.name, run_dir=args.run, command=args.reproduce,
        description=args.description,
        ablations={label: Path(run) for label, run in _pairs(args.ablation, "--ablation")},
        extra_sections={t: Path(f).read_text(encoding="utf-8") for t, f in _pairs(args.section, "--section")},
        failure_modes=list(args.failure_mode), model_name=args.model_name,
    )
    for kind, path in ship_model(inp, args.dest).items():
        print(f"{kind}: {path}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    from training.config import load_config, merge_dicts, parse_override

    over: dict[str, Any] = {}
    for text in args.overrides:
        over = merge_dicts(over, parse_override(text))
    if getattr(args, "quiet", False):
        over = merge_dicts(over, {"train": {"progress": False}})
    return load_config(args.config, over)


def _cmd_pack(args: argparse.Namespace) -> int:
    import numpy as np

    from training.data.manifest import read_manifest
    from training.data.pack import pack
    from training.data.spec import load_spec

    spec = load_spec(args.spec, root=args.data_root)
    manifest = read_manifest(spec)
    if args.limit:
        manifest = manifest.subset(np.arange(min(args.limit, len(manifest))))
    for p in manifest.problems:
        _log(f"note: {p}")
    report = pack(manifest, args.out, size=args.size, workers=args.workers)
    for p in report.skipped:
        _log(f"skipped: {p}")
    _log(f"wrote {report.written} images to {report.path} in {report.seconds:.1f}s "
         f"({len(report.skipped)} skipped)")
    return 0 if report.written else 1


def _cmd_train(args: argparse.Namespace) -> int:
    from training.distributed import cleanup_distributed, init_distributed
    from training.run import run_train

    cfg = _config(args)
    dist = init_distributed(cfg.train.device if cfg.train.device != "auto" else "cuda")
    try:
        run_train(cfg, out=args.out, root=args.data_root, resume=args.resume, dist=dist, log=_log)
    finally:
        cleanup_distributed(dist)
    return 0


def _cmd_cv(args: argparse.Namespace) -> int:
    from training.ensemble import run_ensemble_cv
    from training.run import run_cv

    cfg = _config(args)
    if cfg.ensemble:
        run_ensemble_cv(cfg, args.config, out=args.out, root=args.data_root, log=_log)
    else:
        run_cv(cfg, out=args.out, root=args.data_root, log=_log)
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    import numpy as np
    from torch.utils.data import DataLoader

    from training.data.dataset import collate
    from training.optim import lr_find
    from training.run import build_loss, build_model_from_config, ensure_pack, make_dataset, make_run_dir

    cfg = _config(args)
    data = ensure_pack(cfg, args.data_root, _log)
    run_dir = make_run_dir(cfg, args.out, "-lrfind")
    idx = np.arange(len(data) if cfg.data.limit is None else min(cfg.data.limit, len(data)))
    model, mcfg = build_model_from_config(cfg, data.taxonomy)
    loss_fn = build_loss(cfg, data, mcfg.heads, idx)
    loader = DataLoader(make_dataset(cfg, data, idx, mcfg, train=True), batch_size=cfg.data.batch_size,
                        shuffle=True, collate_fn=collate, num_workers=cfg.data.num_workers)

    def step_loss(m: Any, batch: dict[str, Any]) -> Any:
        return loss_fn(m(batch["image"]), batch["targets"], batch["masks"]).total

    res = lr_find(model, loader, step_loss, cfg.optim, start_lr=args.start_lr, end_lr=args.end_lr,
                  num_steps=args.steps, plot_path=run_dir / "lr_find.png")
    (run_dir / "lr_find.json").write_text(json.dumps({"lrs": res.lrs, "losses": res.losses,
                                                      "suggestion": res.suggestion}), encoding="utf-8")
    print(f"suggested learning rate: {res.suggestion:.3g}  (plot: {res.plot})")
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from training.distill_run import run_distill

    run_distill(_config(args), args.mode, teacher=args.teacher, out=args.out, root=args.data_root, log=_log)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.run import run_evaluate

    if args.cache is not None:  # the research mode's cache instead of metrics, sharded under torchrun
        from training.cache_eval import evaluate_into_cache

        if len(args.bundle) != 1 or args.masks is not None:
            raise ValueError("--cache evaluates exactly one --bundle, without --masks")
        cfg = _config(args)
        report = evaluate_into_cache(args.bundle[0], cfg.data.spec, args.cache, root=args.data_root,
                                     limit=cfg.data.limit, split=args.split, backend=args.backend,
                                     device=args.device, batch_size=args.batch_size, threads=args.threads, log=_log)
        if report.rank == 0:
            print(json.dumps(report.summary()))
        return 1 if report.total_errors and not (report.total_predicted or report.total_cached) else 0
    masks = None
    if args.masks is not None:  # fail on a bad mask folder before the accuracy pass, not after
        from engine.masks import MaskSource

        masks = MaskSource.open(args.masks, mask_column=args.mask_column)
    cfg = _config(args)
    run_dir = run_evaluate(cfg, args.bundle, split=args.split, out=args.out, root=args.data_root, log=_log)
    if masks is not None:
        from training.localisation import evaluate_localisation

        evaluate_localisation(cfg, args.bundle, masks, run_dir, split=args.split, root=args.data_root,
                              threads=args.threads, log=_log)
    return 0


def _run_config(args: argparse.Namespace) -> Any:
    """The config a `cv` run saved, with ``--set`` overrides."""
    from training.config import load_config, merge_dicts, parse_override

    if not (args.run / "config.yaml").is_file():
        raise FileNotFoundError(f"{args.run}: not a `cv` run folder (no config.yaml)")
    over: dict[str, Any] = {"train": {"progress": False}} if getattr(args, "quiet", False) else {}
    for text in args.overrides:
        over = merge_dicts(over, parse_override(text))
    return load_config(args.run / "config.yaml", over)


def _cmd_context_cv(args: argparse.Namespace) -> int:
    from training.context_cv import run_context_cv

    path = run_context_cv(args.run, _run_config(args), out=args.out, root=args.data_root, seeds=args.seeds, log=_log)
    print(f"context: {path}")
    return 0


def _cmd_localisation_cv(args: argparse.Namespace) -> int:
    from engine.masks import MaskSource
    from training.config import load_config, merge_dicts, parse_override
    from training.localisation import run_localisation_cv

    masks = MaskSource.open(args.masks, mask_column=args.mask_column)
    if not (args.run / "config.yaml").is_file():
        raise FileNotFoundError(f"{args.run}: not a `cv` run folder (no config.yaml)")
    over: dict[str, Any] = {}
    for text in args.overrides:
        over = merge_dicts(over, parse_override(text))
    cfg = load_config(args.run / "config.yaml", over)
    out = run_localisation_cv(args.run, masks, cfg=cfg, out=args.out, root=args.data_root, threads=args.threads,
                              progress=not args.quiet, log=_log)
    print(f"localisation: {out / 'localisation_cv.json'}")
    return 0


def _cmd_lesion_cv(args: argparse.Namespace) -> int:
    from training.lesion_seg import SegConfig, run_lesion_cv

    if args.rescore is not None and args.thresholds:
        from training.lesion_seg import threshold_cv

        out = threshold_cv(args.rescore, args.spec, args.masks, args.out, args.thresholds, root=args.data_root,
                           log=_log)
        print(f"lesion finder CV (threshold left one fold out): {out / 'lesion_cv.json'}")
        return 0
    if args.rescore is not None:
        from training.lesion_seg import rescore_lesion_cv

        out = rescore_lesion_cv(args.rescore, args.spec, args.masks, args.out, tta=not args.no_tta,
                                fill_holes=not args.keep_holes, root=args.data_root, log=_log)
        print(f"lesion finder CV (rescored): {out / 'lesion_cv.json'}")
        return 0
    cfg = SegConfig(variant=args.variant, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, folds=args.folds, seed=args.seed, threads=args.threads, limit=args.limit,
                    final_fit=not args.no_final_fit, tta=not args.no_tta, fill_holes=not args.keep_holes,
                    frozen_encoder_stages=args.frozen_stages)
    out = run_lesion_cv(cfg, args.spec, args.masks, args.out, root=args.data_root, log=_log)
    print(f"lesion finder CV: {out / 'lesion_cv.json'}")
    return 0


def _cmd_ensemble_oof(args: argparse.Namespace) -> int:
    import json

    from engine.metrics import to_jsonable
    from training.ensemble import combine_runs

    methods, table = combine_runs(args.runs, root=args.data_root, max_size=args.max_size, log=_log)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ensembles.md").write_text(table, encoding="utf-8")
    (args.out / "ensembles.json").write_text(json.dumps(to_jsonable({"runs": [str(r) for r in args.runs],
                                                                     "methods": methods}), indent=1), encoding="utf-8")
    print(table)
    return 0


def _cmd_detect_cv(args: argparse.Namespace) -> int:
    from training.detection import DetConfig, run_detect_cv, write_comparison

    cfg = DetConfig(variant=args.variant, size=args.size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    frozen_stages=args.frozen_stages, encoder_lr_mult=args.encoder_lr_mult,
                    balanced=not args.no_balanced, folds=args.folds, seed=args.seed, threads=args.threads,
                    limit=args.limit)
    out = run_detect_cv(cfg, args.spec, args.masks, args.out, root=args.data_root, log=_log)
    print(f"detection CV: {out / 'detect_cv.json'}")
    if args.compare is not None:
        print(write_comparison(out, args.compare).read_text(encoding="utf-8"))
    return 0


def _cmd_detect_compare(args: argparse.Namespace) -> int:
    from training.detection import write_comparison

    print(write_comparison(args.run, args.oof, args.label).read_text(encoding="utf-8"))
    return 0


def _cmd_lesion_crops(args: argparse.Namespace) -> int:
    from engine.lesions import DEFAULT_MARGIN
    from training.lesion_crops import write_crop_dataset

    spec = write_crop_dataset(args.spec, args.lesion_run, args.out,
                              margin=DEFAULT_MARGIN if args.margin is None else args.margin, root=args.data_root,
                              log=_log)
    print(f"lesion crops: {spec}  (train on them: dermviewer-train cv CONFIG --set data.spec={spec})")
    return 0


def _cmd_lesion_crop_compare(args: argparse.Namespace) -> int:
    from training.crop_compare import compare_crops

    out = compare_crops(args.whole_oof, args.crop_run, args.out or args.crop_run / "crop_compare",
                        lesion_run=args.lesion_run, originals=args.originals, log=_log)
    print(f"crop comparison: {out / 'crop_compare.md'}")
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from training.robustness import run_robustness

    if args.no_train and args.bundle is None:
        raise ValueError("--no-train needs --bundle")
    run_robustness(_config(args), bundle=args.bundle, out=args.out, root=args.data_root,
                   train_models=not args.no_train, log=_log)
    return 0


def _cmd_robustness_cv(args: argparse.Namespace) -> int:
    from training.robustness import run_robustness_cv

    runs = {label: Path(run) for label, run in _pairs(args.run, "--run")}
    run_robustness_cv(_config(args), runs, out=args.out, root=args.data_root, sweep=not args.no_sweep, log=_log)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.run import run_export

    if (args.checkpoint is None) == (args.bundle is None):
        raise ValueError("give exactly one of --checkpoint or --bundle")
    if args.checkpoint is not None and args.config is None:
        raise ValueError("--checkpoint needs the run's config (its config.yaml)")
    paths = run_export(_config(args), checkpoint=args.checkpoint, bundle=args.bundle, out=args.out, log=_log)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


_COMMANDS = {"pack": _cmd_pack, "train": _cmd_train, "cv": _cmd_cv, "lr-find": _cmd_lr_find,
             "distill": _cmd_distill, "evaluate": _cmd_evaluate, "robustness": _cmd_robustness,
             "robustness-cv": _cmd_robustness_cv, "localisation-cv": _cmd_localisation_cv,
             "context-cv": _cmd_context_cv, "lesion-cv": _cmd_lesion_cv,
             "detect-cv": _cmd_detect_cv, "detect-compare": _cmd_detect_compare,
             "ensemble-oof": _cmd_ensemble_oof,
             "lesion-crops": _cmd_lesion_crops, "lesion-crop-compare": _cmd_lesion_crop_compare,
             "export": _cmd_export, "ship": _cmd_ship}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import DermViewerError

    try:
        return _COMMANDS[args.command](args)
    except DermViewerError as exc:
        _log(f"error: {exc}")
        return 2
    except (FileNotFoundError, ValueError) as exc:
        _log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
