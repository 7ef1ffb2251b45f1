"""The evaluation cache: one HDF5 file per model checksum, one row per photo hash.

A changed model has another checksum, so it finds no file and re-evaluates (old files stay for the
old model: switching back is instant). Rows are appended after every batch and flushed, so a run
that is cancelled or killed keeps what it finished and the next run resumes from there. Reopening
reads a few small arrays and matches hashes, so it costs milliseconds, not inference.

Layout: ``hash`` (n,) strings; ``probs/<head>`` (n, C) float32; ``embedding`` (n, D) float32;
attrs ``model_key``, ``model_name``, ``classes`` (JSON head -> codes). All datasets grow along axis 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from dermviewer.state.research.errors import CacheError

__all__ = ["EvaluationCache", "default_cache_dir"]

_STR = h5py.string_dtype(encoding="utf-8")


def default_cache_dir() -> Path:
    """``<user cache folder>/evaluations`` (tests point ``DERMVIEWER_CACHE_DIR`` elsewhere)."""
    from dermviewer.state.settings import cache_dir

    return cache_dir() / "evaluations"


class EvaluationCache:
    def __init__(self, folder: str | Path, model_key: str, model_name: str = "",
                 classes: dict[str, list[str]] | None = None) -> None:
        self.folder = Path(folder)
        self.model_key, self.model_name = model_key, model_name
        self.classes = classes or {}
        self.path = self.folder / f"{model_key[:24]}.eval.h5"
        self._index: dict[str, int] | None = None

    def _check(self, f: h5py.File) -> None:
        if f.attrs.get("model_key") != self.model_key:
            raise CacheError(f"written for model {f.attrs.get('model_key')!r}, not {self.model_key!r}", self.path)

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
                    raise CacheError(f"unreadable evaluation cache: {exc}", self.path) from exc
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
        self.folder.mkdir(parents=True, exist_ok=True)
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
            raise CacheError(f"cannot write the evaluation cache: {exc}", self.path) from exc
        for i, h in enumerate(hashes):
            index[h] = start + i

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._index = None


def _grow(f: h5py.File, name: str, rows: np.ndarray, dtype: object) -> None:
    if name not in f:
        f.create_dataset(name, data=rows, dtype=dtype, maxshape=(None, *rows.shape[1:]),
                         chunks=(256, *rows.shape[1:]))
        return
    ds = f[name]
    n = ds.shape[0]
    ds.resize(n + len(rows), axis=0)
    ds[n:] = rows
