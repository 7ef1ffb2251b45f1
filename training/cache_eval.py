"""``dermviewer-train evaluate --cache``: the app's research-mode evaluation, sharded over torchrun processes.

For archives too large for one machine (issue 12). Each rank takes a contiguous, disjoint slice of the
dataset's photos, hashes only its own slice, skips the photos the cache already holds, and predicts the rest
exactly as the app does (``engine.imageio.load_image`` -> ``Predictor.predict_batch`` ->
``engine.eval_cache.predictions_to_rows``, batches of 16) into a shard file of its own, flushed after every
batch. After a barrier, rank 0 merges the shards in rank order into the one cache file
(:mod:`engine.eval_cache`), keyed by the bundle's checksum and the photos' SHA-256: the file the app opens.
Shards a killed run left behind are merged at the start of the next one, so a rerun (any number of processes)
resumes. Slices follow the photo order, so the merged rows come out in the same order as a single process.

On several machines the cache folder must be on a filesystem every rank sees (the shards sit beside it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.errors import DermViewerError
from engine.eval_cache import EvaluationCache, model_checksum, photo_hash, predictions_to_rows
from engine.imageio import load_image
from engine.inference import Predictor
from training.data.spec import DatasetSpec, SpecError
from training.distributed import DistInfo, barrier

__all__ = ["CacheEvalReport", "cache_for", "evaluate_into_cache", "load_predictor", "manifest_photos",
           "run_cache_evaluation", "shard_bounds"]

Log = Callable[[str], None]
_BARRIER_TIMEOUT_S = 7 * 24 * 3600.0  # ranks wait for the slowest slice at the barrier: never time out a long run


@dataclass
class CacheEvalReport:
    """One rank's part of a run; on rank 0 ``merged`` and the ``total_*`` fields cover every rank."""

    path: Path
    model_key: str
    rank: int
    world_size: int
    photos: int  # photos in the dataset (all ranks)
    slice_size: int  # photos in this rank's slice
    cached: int  # of this slice, already in the cache before the run
    predicted: int  # of this slice, predicted in this run
    errors: dict[str, str] = field(default_factory=dict)  # photo file -> reason (this rank)
    merged: int = 0  # rows rank 0 added to the cache (shards of this run and of an interrupted one)
    total_cached: int = 0
    total_predicted: int = 0
    total_errors: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        return {"cache": str(self.path), "model_key": self.model_key, "processes": self.world_size,
                "photos": self.photos, "cached_before": self.total_cached, "predicted": self.total_predicted,
                "unreadable": self.total_errors, "merged_rows": self.merged, "seconds": round(self.seconds, 2)}


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous slice ``[start, stop)`` of ``n`` items; sizes differ by at most one."""
    return n * rank // world_size, n * (rank + 1) // world_size


def manifest_photos(spec: DatasetSpec, *, limit: int | None = None, ids: set[str] | None = None) -> list[Path]:
    """Every photo the manifest names, in its row order, as the app's research mode opens it (rows without a
    label included: the cache holds model outputs, not labels). ``limit`` keeps the first rows (as the app's
    ``open_manifest(limit=)``); ``ids`` keeps rows whose id column is among them (a split's test ids)."""
    try:
        df = pd.read_csv(spec.manifest, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SpecError(f"cannot read manifest CSV: {exc}", spec.manifest) from exc
    if spec.image_column not in df.columns:
        raise SpecError(f"manifest lacks the image column {spec.image_column!r}", spec.manifest)
    if limit is not None:
        df = df.iloc[:limit]
    if ids is not None:
        key = spec.id_column if spec.id_column in df.columns else spec.image_column
        df = df[df[key].str.strip().isin(ids)]
    cells = [str(v).strip() for v in df[spec.image_column].tolist()]
    return [Path(c) if Path(c).is_absolute() else spec.root / c for c in cells if c]


def load_predictor(bundle: Path, *, backend: str, device: str, threads: int) -> Predictor:
    """The model as the app loads it (``dermviewer.state.model.ModelHost.prepare``): the backend is part of
    the cache key, so a cache for the app's default setting needs ``backend="onnx"``."""
    import torch

    torch.set_num_threads(threads)
    if bundle.suffix.lower() == ".onnx":
        from engine.inference import onnx_predictor

        return onnx_predictor(bundle, device=device, onnx_threads=threads)
    if backend == "onnx":
        return Predictor(bundle, device=device, backend="onnx", onnx_threads=threads)
    from engine.bundle import load_bundle

    return Predictor(load_bundle(bundle), device=device, backend=backend, onnx_threads=threads)


def cache_for(cache: Path, predictor: Predictor, model_key: str) -> EvaluationCache:
    """A folder (the app's naming, ``<key[:24]>.eval.h5``, e.g. the app's own cache folder) or a ``.h5`` file."""
    classes = {h: s.codes for h, s in predictor.bundle.taxonomy.heads.items()}
    if cache.suffix.lower() == ".h5":
        return EvaluationCache.at(cache, model_key, predictor.bundle.name, classes)
    return EvaluationCache(cache, model_key, predictor.bundle.name, classes)


def run_cache_evaluation(
    bundle: Path,
    photos: Sequence[Path],
    cache: Path,
    *,
    dist: DistInfo | None = None,
    backend: str = "onnx",
    device: str = "cpu",
    batch_size: int = 16,
    threads: int = 1,
    log: Log = print,
) -> CacheEvalReport:
    """This rank's slice of ``photos`` into the cache; rank 0 merges every rank's shard (see the module)."""
    dist = dist or DistInfo()
    t0 = time.perf_counter()
    tag = f"[rank {dist.rank}/{dist.world_size}] " if dist.enabled else ""
    if backend == "onnx" and dist.enabled:  # rank 0 builds the ONNX cache entry once, the others then read it
        if dist.is_main:
            predictor = load_predictor(bundle, backend=backend, device=device, threads=threads)
        barrier(dist)
        if not dist.is_main:
            predictor = load_predictor(bundle, backend=backend, device=device, threads=threads)
    else:
        predictor = load_predictor(bundle, backend=backend, device=device, threads=threads)
    key = model_checksum(predictor)
    target = cache_for(cache, predictor, key)
    merged = 0
    if dist.is_main and (leftover := target.shards()):
        merged += target.merge(leftover)
        log(f"{tag}merged {merged} rows left by an interrupted run into {target.path}")
    barrier(dist)  # every rank reads the cache only after those rows are in it

    start, stop = shard_bounds(len(photos), dist.rank, dist.world_size)
    have = target.index()
    todo: list[tuple[Path, str]] = []
    seen: set[str] = set()
    errors: dict[str, str] = {}
    cached = 0
    for path in photos[start:stop]:
        try:
            h = photo_hash(path)
        except OSError as exc:
            errors[str(path)] = f"cannot read: {exc.strerror or exc}"
            continue
        if h in have:
            cached += 1
        elif h not in seen:  # a duplicate photo (same bytes) is predicted once
            seen.add(h)
            todo.append((path, h))
    log(f"{tag}{stop - start} photos in this slice: {cached} cached, {len(todo)} to predict")

    shard = target.shard(dist.rank)
    shard.clear()  # a stale shard of this rank was merged above; never append to half of one
    predicted = 0
    for b in range(0, len(todo), max(1, batch_size)):
        images, hashes = [], []
        for path, h in todo[b : b + batch_size]:
            try:
                images.append(load_image(path))
                hashes.append(h)
            except DermViewerError as exc:
                errors[str(path)] = str(exc)
        if images:
            probs, emb = predictions_to_rows(predictor.predict_batch(images))
            shard.append(hashes, probs, emb)
            predicted += len(images)
            log(f"{tag}{predicted} / {len(todo)} predicted")
    report = CacheEvalReport(target.path, key, dist.rank, dist.world_size, len(photos), stop - start, cached,
                             predicted, errors)
    barrier(dist)  # every shard is complete before rank 0 reads them
    totals = _gather_counts(dist, (cached, predicted, len(errors)))
    report.total_cached, report.total_predicted, report.total_errors = (sum(t[i] for t in totals) for i in range(3))
    if dist.is_main:
        merged += target.merge([target.shard(r) for r in range(dist.world_size)])
    report.merged = merged
    report.seconds = time.perf_counter() - t0
    for path_text, reason in errors.items():
        log(f"{tag}skipped {path_text}: {reason}")
    return report


def evaluate_into_cache(
    bundle: Path,
    spec: str | Path,
    cache: Path,
    *,
    root: str | Path | None = None,
    limit: int | None = None,
    split: Path | None = None,
    backend: str = "onnx",
    device: str = "cpu",
    batch_size: int = 16,
    threads: int = 1,
    log: Log = print,
) -> CacheEvalReport:
    """``dermviewer-train evaluate --cache``: the photos of a data spec (optionally the first ``limit`` rows,
    or a split file's test/val ids), one process or every process torchrun started (gloo: only barriers and a
    few counts cross ranks, so the model may run on any device)."""
    import json

    from training.data.spec import load_spec
    from training.distributed import cleanup_distributed, init_distributed
    from training.run import resolve_repo_path

    ids = None
    if split is not None:
        chosen = json.loads(Path(split).read_text(encoding="utf-8"))
        ids = set(chosen.get("test") or chosen.get("val") or [])
        if not ids:
            raise SpecError("split file has no 'test' or 'val' ids", split)
    photos = manifest_photos(load_spec(resolve_repo_path(spec), root=root), limit=limit, ids=ids)
    dist = init_distributed("cpu", timeout_s=_BARRIER_TIMEOUT_S)
    try:
        report = run_cache_evaluation(bundle, photos, cache, dist=dist, backend=backend, device=device,
                                      batch_size=batch_size, threads=threads, log=log)
    finally:
        cleanup_distributed(dist)
    if dist.is_main:
        log(f"evaluation cache: {report.path} (the app reads it from <its cache folder>/evaluations/"
            f"{report.model_key[:24]}.eval.h5)")
    return report


def _gather_counts(dist: DistInfo, counts: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    if not dist.enabled:
        return [counts]
    import torch.distributed as tdist

    out: list[tuple[int, int, int] | None] = [None] * dist.world_size
    tdist.all_gather_object(out, counts)
    return [c for c in out if c is not None]
