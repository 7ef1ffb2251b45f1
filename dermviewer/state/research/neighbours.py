"""Similar cases: the k nearest photos of a reference set by embedding (multitask-lesion paper, 5-NN retrieval).

Cosine similarity on the model's pooled embedding. The query photo itself is never returned, and
neither is any reference photo with the same content hash (a duplicate file would otherwise be its
own best neighbour). Each neighbour says whether it shares the query's diagnosis, which is the point
of the exercise: "the model saw cases like this one, and they were labelled X".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Neighbour", "NeighbourIndex"]


@dataclass(frozen=True)
class Neighbour:
    index: int  # row of the reference set
    similarity: float  # cosine, in [-1, 1]
    label: int  # the neighbour's diagnosis (-1 unknown)
    shares_label: bool


class NeighbourIndex:
    """Reference embeddings (N, D), their labels and content hashes; rows without an embedding are skipped."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, hashes: list[str] | None = None) -> None:
        e = np.asarray(embeddings, np.float32)
        self.valid: np.ndarray = np.asarray(np.isfinite(e).all(axis=1))
        norm = np.linalg.norm(np.where(self.valid[:, None], e, 0.0), axis=1, keepdims=True)
        self.unit = np.where(norm > 0, np.where(self.valid[:, None], e, 0.0) / np.maximum(norm, 1e-12), 0.0)
        self.labels = np.asarray(labels, np.int64)
        self.hashes = hashes

    def query(self, vector: np.ndarray, label: int, k: int = 5, *, exclude: int | None = None,
              exclude_hash: str | None = None) -> list[Neighbour]:
        v = np.asarray(vector, np.float32).reshape(-1)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        sim = self.unit @ v
        allowed = np.array(self.valid, dtype=bool)
        if exclude is not None:
            allowed[exclude] = False
        if exclude_hash is not None and self.hashes is not None:
            allowed &= np.array([h != exclude_hash for h in self.hashes])
        candidates = np.flatnonzero(allowed)
        order = candidates[np.argsort(-sim[candidates], kind="stable")[:k]]
        return [Neighbour(int(i), float(sim[i]), int(self.labels[i]), bool(label >= 0 and self.labels[i] == label))
                for i in order]

    def of_row(self, row: int, k: int = 5) -> list[Neighbour]:
        """Neighbours of reference photo ``row`` itself (the dataset is its own reference set)."""
        h = self.hashes[row] if self.hashes is not None else None
        return self.query(self.unit[row], int(self.labels[row]), k, exclude=row, exclude_hash=h)
