"""An HDF5 pack (``dermviewer-train pack``) as a dataset: the resized pixels are read straight from it.

Layout as written by ``training.data.pack`` (read here with h5py; the app never imports training):
``images`` (N, S, S, 3) uint8, ``ids``/``paths``/``groups`` strings, ``labels/<head>``, ``masks/<head>``,
``eval_exclude``, ``metadata/<column>``, ``source_sha256``; attrs ``spec``, ``taxonomy`` (JSON), ``size``.
The pack's spec names its manifest; when that file is still there, its subgroup columns are joined in.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dermviewer.state.research.dataset import EvalDataset, join_manifest, mask_paths
from dermviewer.state.research.errors import DatasetError
from dermviewer.state.research.images import PackImages
from dermviewer.state.research.mapping import LabelStatus
from engine.taxonomy import Taxonomy

__all__ = ["open_pack", "reindex"]


def _strings(ds: h5py.Dataset) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def reindex(labels: np.ndarray, known: np.ndarray, src: list[str], dst: list[str]) -> np.ndarray:
    """Single-label indices from one taxonomy's class order to another's, by code; -1 where unknown."""
    table = np.array([dst.index(c) if c in dst else -1 for c in src], dtype=np.int64)
    out = np.full(len(labels), -1, dtype=np.int64)
    ok = known.astype(bool) & (labels >= 0) & (labels < len(src))
    out[ok] = table[labels[ok]]
    return out


def open_pack(path: str | Path, taxonomy: Taxonomy | None = None) -> EvalDataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError("HDF5 pack not found", path)
    try:
        with h5py.File(path, "r") as f:
            src_tax = Taxonomy.from_dict(json.loads(f.attrs["taxonomy"]), path)
            spec = json.loads(f.attrs.get("spec", "{}"))
            size = int(f.attrs["size"])
            ids, rel = _strings(f["ids"]), _strings(f["paths"])
            groups = _strings(f["groups"]) if "groups" in f else [""] * len(ids)
            labels = {k: f[f"labels/{k}"][()] for k in f["labels"]}
            masks = {k: f[f"masks/{k}"][()] for k in f["masks"]}
            exclude = f["eval_exclude"][()].astype(bool)
            metadata = {k: _strings(f[f"metadata/{k}"]) for k in f.get("metadata", {})}
            hashes = _strings(f["source_sha256"])
            if f["images"].shape[0] != len(ids):
                raise DatasetError(f"{f['images'].shape[0]} images for {len(ids)} ids", path)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise DatasetError(f"not a readable HDF5 pack: {exc}", path) from exc
    tax = taxonomy or src_tax
    n = len(ids)
    heads = {}
    for head in ("disease", "body_part"):
        if head in labels and head in tax.heads and head in src_tax.heads:
            heads[head] = reindex(labels[head], masks[head], src_tax.head(head).codes, tax.head(head).codes)
        else:
            heads[head] = np.full(n, -1, np.int64)
    a_dst = tax.head("attributes").codes if "attributes" in tax.heads else []
    a_src = src_tax.head("attributes").codes if "attributes" in src_tax.heads else []
    attrs = np.zeros((n, len(a_dst)), np.float32)
    known = np.zeros_like(attrs, dtype=bool)
    for j, code in enumerate(a_dst):
        if code in a_src and "attributes" in labels:
            attrs[:, j] = labels["attributes"][:, a_src.index(code)]
            known[:, j] = masks["attributes"][:, a_src.index(code)].astype(bool)
    root = Path(spec.get("root", path.parent))
    files = [Path(p) if Path(p).is_absolute() else root / p for p in rel]
    ds = EvalDataset(
        name=f"{path.name} (pack, {size} px)", source=path, kind="pack", taxonomy=tax, ids=ids,
        images=PackImages(path, range(n), hashes, size, files), disease=heads["disease"],
        label_status=[LabelStatus.OK if d >= 0 else LabelStatus.UNMAPPED for d in heads["disease"]],
        body_part=heads["body_part"], attributes=attrs, attributes_known=known, eval_exclude=exclude,
        groups=groups, metadata=metadata, mask_paths=mask_paths(root, list(files)), root=root,
    )
    manifest = Path(spec.get("manifest", ""))
    if manifest.is_file():
        images = ds.images
        join_manifest(ds, manifest)
        ds.images = images  # keep reading the pack's pixels; the manifest adds subgroups and the export rows
    return ds
