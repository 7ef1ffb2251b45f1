"""The evaluation cache format: what one model said about each photo, one HDF5 file per model checksum.

Shared by the app's research mode (``dermviewer.state.research.evaluation`` evaluates in a worker) and
``dermviewer-train evaluate --cache`` (``training.cache_eval``, sharded over torchrun processes), so a cache
written on a cluster is opened by the app exactly as if it had computed it itself (issue 12).

Keys. A model is named by :func:`model_checksum` (weights, preprocessing, classes, backend: same key <=> the
outputs may be reused), a photo by :func:`photo_hash` (the file's SHA-256: a re-saved photo is evaluated again,
a renamed one is not) or, for the resized pixels of an HDF5 pack, by :func:`pack_photo_hash`.

Layout of ``<folder>/<first 24 hex digits of the key>.eval.h5``: ``hash`` (n,) strings; ``probs/<head>``
(n, C) float32 in taxonomy order (:func:`predictions_to_rows`); ``embedding`` (n, D) float32; attrs
``model_key``, ``model_name``, ``classes`` (JSON head -> codes). Every dataset grows along axis 0.

Resume. Rows are appended after every batch and flushed, so a run that is cancelled or killed keeps what it
finished and the next run predicts only the photos the index lacks (a re-evaluated hash gets a new row; the
index points at the newest). A sharded run writes ``<stem>.shard<rank>.h5`` files of the same format beside
the cache and merges them into it (:meth:`EvaluationCache.merge`); shards a killed run left behind are
merged by the next one. Reopening reads a few small arrays and matches hashes: milliseconds, not inference.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from engine.errors import EvaluationCacheError
from engine.prediction import Prediction

if TYPE_CHECKING:
    from engine.inference import Predictor

__all__ = ["FILE_SUFFIX", "EvaluationCache", "EvaluationCacheError", "cache_file_name", "default_cache_dir",
           "model_checksum", "pack_photo_hash", "photo_hash", "predictions_to_rows"]

FILE_SUFFIX = ".eval.h5"
_STR = h5py.string_dtype(encoding="utf-8")


def cache_file_name(model_key: str) -> str:
    return f"{model_key[:24]}{FILE_SUFFIX}"


def default_cache_dir() -> Path:
    """``$DERMVIEWER_CACHE_DIR/evaluations`` or the platform's user cache folder: where the app looks
    (its ``settings.cache_dir() / "evaluations"``), for code that cannot import the app."""
    base = os.environ.get("DERMVIEWER_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("dermviewer", appauthor=False)
    return Path(base) / "evaluations"


def photo_hash(path: Path) -> str:
    """SHA-256 of a photo file's bytes, the cache key of a photo (raises ``OSError`` when unreadable)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pack_photo_hash(source_sha256: str, size: int) -> str:
    """A pack's resized copy of a photo predicts differently from the file: its key carries the pack size."""
    return f"{source_sha256}:pack{int(size)}"


def model_checksum(predictor: Predictor) -> str:
    """What the outputs depend on: the weights (the bundle's own SHA-256, or the model file's bytes),
    the preprocessing, the class lists and the backend. Same key <=> the cache may be reused."""
    b = predictor.bundle
    weights = ""
    path = Path(b.path) if b.path is not None else None
    if path is not None and path.suffix == ".dmvb":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        weights = str(json.loads(meta.get("dermviewer_bundle", "{}")).get("weights_sha256", ""))
    if not weights and path is not None and path.is_file():
        weights = photo_hash(path)
    if not weights:  # an in-memory bundle: hash the tensors themselves
        h = hashlib.sha256()
        for k in sorted(b.state_dict):
            h.update(k.encode())
            h.update(b.state_dict[k].detach().cpu().contiguous().numpy().tobytes())
        weights = h.hexdigest()
    key = {"weights": weights, "preprocess": b.preprocess.to_dict(), "taxonomy": b.taxonomy.to_dict(),
           "backend": predictor.backend_name}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def predictions_to_rows(preds: list[Prediction]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-head probability rows in taxonomy order (the differential is sorted, ``disease_probs`` is not)."""
    probs: dict[str, np.ndarray] = {
        "disease": np.stack([np.asarray(p.disease_probs, np.float32) for p in preds]),
    }
    if preds[0].body_parts:
        probs["body_part"] = np.array([[s.probability for s in p.body_parts] for p in preds], np.float32)
    if preds[0].attributes:
        probs["attributes"] = np.array([[s.probability for s in p.attributes] for p in preds], np.float32)
    emb = None
    if preds[0].embedding is not None:
        emb = np.stack([np.asarray(p.embedding, np.float32) for p in preds])
    return probs, emb


class EvaluationCache:
    """``<folder>/<key[:24]>.eval.h5`` for one model (:meth:`at` names the file itself)."""

    def __init__(self, folder: str | Path, model_key: str, model_name: str = "",
                 classes: dict[str, list[str]] | None = None) -> None:
        self.folder = Path(folder)
        self.model_key, self.model_name = model_key, model_name
        self.classes = classes or {}
        self.path = self.folder / cache_file_name(model_key)
        self._index: dict[str, int] | None = None

    @classmethod
    def at(cls, path: str | Path, model_key: str, model_name: str = "",
           classes: dict[str, list[str]] | None = None) -> EvaluationCache:
        """A cache in a file of any name (a shard, or a file to hand over); the app opens the folder form."""
        cache = cls(Path(path).parent, model_key, model_name, classes)
        cache.path = Path(path)
        return cache

    def _check(self, f: h5py.File) -> None:
        if f.attrs.get("model_key") != self.model_key:
            raise EvaluationCacheError(f"written for model {f.attrs.get('model_key')!r}, not {self.model_key!r}",
                                       self.path)

    def index(self) -> dict[str, int]:
        """Photo hash -> row; empty when nothing is cached for this model."""
        if self._index is None:
            self._index = {}
            if self.path.is_file():
                try:
                    with h5py.File(self.path, "r") as f:
                        self._check(f)
                        hashes = f["hash"].asstr()[()] if "hash" in f else []
                        self._index = {h: i for i, h in enumerate(hashes)}
                except (OSError, KeyError) as exc:
                    raise EvaluationCacheError(f"unreadable evaluation cache: {exc}", self.path) from exc
        return self._index

    def read(self, hashes: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """(found mask, probs per head, embeddings) for ``hashes`` in order; missing rows are NaN."""
        index = self.index()
        rows = np.array([index.get(h, -1) for h in hashes], dtype=np.int64)
        found = rows >= 0
        probs: dict[str, np.ndarray] = {}
        emb = None
        if not found.any():
            return found, probs, emb
        with h5py.File(self.path, "r") as f:
            for head in f["probs"]:
                data = f[f"probs/{head}"][()]
                out = np.full((len(rows), data.shape[1]), np.nan, np.float32)
                out[found] = data[rows[found]]
                probs[head] = out
            if "embedding" in f:
                data = f["embedding"][()]
                emb = np.full((len(rows), data.shape[1]), np.nan, np.float32)
                emb[found] = data[rows[found]]
        return found, probs, emb

    def append(self, hashes: Sequence[str], probs: dict[str, np.ndarray], embedding: np.ndarray | None) -> None:
        """Add finished photos (a re-evaluated hash gets a new row; the index points at the newest)."""
        if not len(hashes):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        index = self.index()
        try:
            with h5py.File(self.path, "a") as f:
                if "model_key" not in f.attrs:
                    f.attrs.update({"model_key": self.model_key, "model_name": self.model_name,
                                    "classes": json.dumps(self.classes)})
                self._check(f)
                start = f["hash"].shape[0] if "hash" in f else 0
                _grow(f, "hash", np.array(list(hashes), dtype=object), _STR)
                for head, p in probs.items():
                    _grow(f, f"probs/{head}", np.asarray(p, np.float32), np.float32)
                if embedding is not None:
                    _grow(f, "embedding", np.asarray(embedding, np.float32), np.float32)
                f.flush()
        except OSError as exc:
            raise EvaluationCacheError(f"cannot write the evaluation cache: {exc}", self.path) from exc
        for i, h in enumerate(hashes):
            index[h] = start + i

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._index = None

    # -- shards of a run split over processes ----------------------------------------------------------
    def shard(self, rank: int) -> EvaluationCache:
        """The file one process of a sharded run appends to (same key, same format), beside this one."""
        stem = self.path.name.removesuffix(".h5")
        return EvaluationCache.at(self.path.with_name(f"{stem}.shard{int(rank)}.h5"), self.model_key,
                                  self.model_name, self.classes)

    def shards(self) -> list[EvaluationCache]:
        """Shard files present now (e.g. left by a killed run), in rank order."""
        stem = self.path.name.removesuffix(".h5")
        pattern = re.compile(rf"{re.escape(stem)}\.shard(\d+)\.h5")
        ranks = sorted(int(m.group(1)) for p in self.path.parent.glob(f"{glob.escape(stem)}.shard*.h5")
                       if (m := pattern.fullmatch(p.name)))
        return [self.shard(rank) for rank in ranks]

    def merge(self, shards: Sequence[EvaluationCache], *, remove: bool = True, chunk: int = 4096) -> int:
        """Append the shards' rows to this cache, shard by shard in the order given, ``chunk`` rows at a time
        (a shard's newest row per hash; hashes this cache already holds are skipped). Each shard file is
        deleted once merged (``remove``), so an interrupted merge is finished by the next one. Returns the
        number of rows added."""
        added = 0
        for shard in shards:
            if not shard.path.is_file():
                continue
            newest = shard.index()  # checks the key too: a shard of another model is refused
            try:
                with h5py.File(shard.path, "r") as f:
                    n = f["hash"].shape[0] if "hash" in f else 0
                    heads = list(f["probs"]) if "probs" in f else []
                    for start in range(0, n, chunk):
                        hashes = f["hash"].asstr()[start : start + chunk]
                        have = self.index()
                        keep = np.array([newest[h] == start + i and h not in have for i, h in enumerate(hashes)],
                                        dtype=bool)
                        if not keep.any():
                            continue
                        probs = {h: f[f"probs/{h}"][start : start + chunk][keep] for h in heads}
                        emb = f["embedding"][start : start + chunk][keep] if "embedding" in f else None
                        self.append([h for h, k in zip(hashes, keep, strict=True) if k], probs, emb)
                        added += int(keep.sum())
            except (OSError, KeyError) as exc:
                raise EvaluationCacheError(f"unreadable evaluation cache shard: {exc}", shard.path) from exc
            if remove:
                shard.clear()
        return added


def _grow(f: h5py.File, name: str, rows: np.ndarray, dtype: object) -> None:
    if name not in f:
        f.create_dataset(name, data=rows, dtype=dtype, maxshape=(None, *rows.shape[1:]),
                         chunks=(256, *rows.shape[1:]))
        return
    ds = f[name]
    n = ds.shape[0]
    ds.resize(n + len(rows), axis=0)
    ds[n:] = rows
