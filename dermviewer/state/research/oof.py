"""Out-of-fold predictions (``resources/models/<stem>.oof.h5``) as a dataset plus its evaluation.

The file a cross-validation run writes holds, per photo, the labels it was scored against and the
probabilities of the fold model that did *not* train on it (``probs/disease_fused`` is the
differential), the embeddings and the fold. No inference is needed to study it; joined with the
manifest (by ``img_id``), its photos, subgroups and masks appear too.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dermviewer.state.research.dataset import EvalDataset, join_manifest
from dermviewer.state.research.errors import DatasetError
from dermviewer.state.research.images import NoImages
from dermviewer.state.research.mapping import LabelStatus
from dermviewer.state.research.result import EvalResult
from engine.bundle import Bundle
from engine.taxonomy import Taxonomy

__all__ = ["align_result", "oof_source_of", "open_oof"]


def _strings(ds: h5py.Dataset) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def open_oof(path: str | Path, manifest: str | Path | None = None) -> tuple[EvalDataset, EvalResult]:
    """Read an out-of-fold file; ``manifest`` (CSV or spec YAML) adds the photos and their metadata."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("out-of-fold file not found", path)
    try:
        with h5py.File(path, "r") as f:
            taxonomy = Taxonomy.from_dict(json.loads(f.attrs["taxonomy"]), path)
            ids = _strings(f["ids"])
            labels = {k: f[f"labels/{k}"][()] for k in f["labels"]}
            masks = {k: f[f"masks/{k}"][()].astype(bool) for k in f["masks"]}
            probs = {k: f[f"probs/{k}"][()].astype(np.float32) for k in f["probs"]}
            emb = f["embeddings"][()].astype(np.float32) if "embeddings" in f else None
            folds = f["fold"][()] if "fold" in f else None
            exclude = f["eval_exclude"][()].astype(bool) if "eval_exclude" in f else np.zeros(len(ids), bool)
            run = str(f.attrs.get("run", path.stem))
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"not a readable out-of-fold file: {exc}", path) from exc
    n = len(ids)
    disease = np.where(masks.get("disease", np.ones(n, bool)), labels["disease"], -1).astype(np.int64)
    body = labels.get("body_part", np.full(n, -1))
    body = np.where(masks.get("body_part", np.ones(n, bool)), body, -1).astype(np.int64)
    n_attr = len(taxonomy.head("attributes")) if "attributes" in taxonomy.heads else 0
    attrs = labels.get("attributes", np.zeros((n, n_attr), np.float32)).astype(np.float32)
    known = masks.get("attributes", np.zeros(attrs.shape, bool))
    ds = EvalDataset(
        name=f"{path.name} (out of fold)", source=path, kind="oof", taxonomy=taxonomy, ids=ids,
        images=NoImages(n, path), disease=disease,
        label_status=[LabelStatus.OK if d >= 0 else LabelStatus.MISSING for d in disease],
        body_part=body, attributes=attrs, attributes_known=known, eval_exclude=exclude, groups=[""] * n,
        mask_paths=[None] * n,
    )
    if manifest is not None:
        join_manifest(ds, Path(manifest))
    disease_probs = probs.get("disease_fused", probs.get("disease"))
    if disease_probs is None:
        raise DatasetError("the file has no disease probabilities (probs/disease_fused)", path)
    result = EvalResult(
        model_key=f"oof:{run}", model_name=run,
        probs={"disease": disease_probs, **{h: probs[h] for h in ("body_part", "attributes") if h in probs}},
        embeddings=emb, done=np.ones(n, bool), folds=folds,
    )
    return ds, result


def oof_source_of(bundle: Bundle) -> tuple[Path | None, Path | None]:
    """The out-of-fold file shipped beside a bundle (``<stem>.oof.h5``) and the dataset spec it was
    trained on, from the bundle's provenance (``config.data.spec``, relative to the repository root
    where training ran; only found when that checkout is here). Either may be None."""
    if bundle.path is None:
        return None, None
    path = Path(bundle.path)
    oof = path.with_name(path.stem + ".oof.h5")
    spec_name = ((bundle.provenance.get("config") or {}).get("data") or {}).get("spec")
    spec = None
    if isinstance(spec_name, str) and spec_name:
        import resources

        for base in (Path(resources.__file__).resolve().parents[1], Path.cwd()):
            if (base / spec_name).is_file():
                spec = base / spec_name
                break
    return (oof if oof.is_file() else None), spec


def align_result(result: EvalResult, source_ids: list[str], target_ids: list[str]) -> EvalResult:
    """Reorder an evaluation of ``source_ids`` onto ``target_ids`` (ids it lacks are not done)."""
    where = {v: i for i, v in enumerate(source_ids)}
    rows = np.array([where.get(t, -1) for t in target_ids], dtype=np.int64)
    found = rows >= 0
    probs = {}
    for head, p in result.probs.items():
        out = np.full((len(rows), p.shape[1]), np.nan, np.float32)
        out[found] = p[rows[found]]
        probs[head] = out
    emb = None
    if result.embeddings is not None:
        emb = np.full((len(rows), result.embeddings.shape[1]), np.nan, np.float32)
        emb[found] = result.embeddings[rows[found]]
    done = np.zeros(len(rows), bool)
    done[found] = result.done[rows[found]]
    return EvalResult(result.model_key, result.model_name, probs, emb, done)
