"""Suspected label errors, worst first: confident learning on out-of-fold predictions (Northcutt et al. 2021,
via cleanlab's ``find_label_issues`` and ``get_label_quality_scores``) and near-duplicate photos whose labels
disagree (a 64-bit difference hash; the same photograph filed twice with two diagnoses cannot be right twice).

The out-of-fold file (``<model>.oof.h5``: ``ids``, ``probs/<head>``, the taxonomy in its attributes) is read
by class *code*, so a retrained model with another class order or another file still lines up with the
project's labels; photos or classes it lacks are simply not scored by it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np
import sqlalchemy as sa

from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.errors import ProjectError
from dermviewer.state.annotate.store import SqlAnnotationStore
from engine.taxonomy import Taxonomy

__all__ = ["OofPredictions", "Suspect", "dhash", "label_quality", "near_duplicate_conflicts", "rank_suspects",
           "read_oof"]

HEADS = ("disease", "body_part")


@dataclass(frozen=True)
class OofPredictions:
    ids: list[str]
    probs: dict[str, np.ndarray]  # head -> (n, classes), columns in ``codes[head]`` order
    codes: dict[str, list[str]]

    def for_keys(self, head: str, keys: list[str], codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``keys`` with columns in ``codes`` order (renormalised); and which keys were found."""
        where = {k: i for i, k in enumerate(self.ids)}
        rows = np.array([where.get(k, -1) for k in keys])
        src = self.probs[head]
        cols = [self.codes[head].index(c) if c in self.codes[head] else -1 for c in codes]
        out = np.zeros((len(keys), len(codes)), np.float64)
        found = rows >= 0
        for j, c in enumerate(cols):
            if c >= 0:
                out[found, j] = src[rows[found], c]
        s = out.sum(axis=1, keepdims=True)
        ok = found & (s[:, 0] > 0)
        out[ok] /= s[ok]
        return out, ok

    def suggestion(self, key: str, head: str) -> tuple[str, float] | None:
        if head not in self.probs or key not in self.ids:
            return None
        p = self.probs[head][self.ids.index(key)]
        return self.codes[head][int(np.argmax(p))], float(np.max(p))


def read_oof(path: str | Path) -> OofPredictions:
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            tax = Taxonomy.from_dict(json.loads(f.attrs["taxonomy"]), path)
            ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f["ids"][()]]
            probs = {}
            for head in HEADS:
                name = "disease_fused" if head == "disease" and "probs/disease_fused" in f else head
                if f"probs/{name}" in f and head in tax.heads:
                    probs[head] = f[f"probs/{name}"][()].astype(np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise ProjectError(f"not a readable out-of-fold file: {exc}", path) from exc
    return OofPredictions(ids, probs, {h: tax.head(h).codes for h in probs})


@dataclass
class Suspect:
    key: str
    score: float  # higher = more likely wrong; near-duplicate conflicts score above 1
    reasons: list[str] = field(default_factory=list)


def label_quality(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's self-confidence quality (0 = surely wrong) and its confident-learning issue flags."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    flagged = np.zeros(len(labels), bool)
    if len(np.unique(labels)) > 1:
        flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    return quality, flagged


def dhash(path: str | Path, size: int = 16) -> bytes | None:
    """512-bit difference hash (16x16 horizontal and vertical neighbour comparisons of the grey photo, packed
    to 64 bytes); None if unreadable. On the shared data the known duplicates differ by 0 and 14 bits, the
    closest distinct photos by 96; 8x8 hashes could not tell them apart."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        return None
    h = cv2.resize(grey, (size + 1, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    v = cv2.resize(grey, (size, size + 1), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = np.concatenate([(h[:, 1:] > h[:, :-1]).ravel(), (v[1:, :] > v[:-1, :]).ravel()])
    return np.packbits(bits).tobytes()


def _hashes(store: SqlAnnotationStore) -> dict[str, bytes]:
    """Each photo's hash, computed once and cached in the project (``photos.phash``, hex)."""
    out: dict[str, bytes] = {}
    todo = []
    with store.engine.connect() as conn:
        for key, path, ph in conn.execute(sa.select(S.photos.c.key, S.photos.c.path, S.photos.c.phash)):
            if ph:
                out[key] = bytes.fromhex(ph)
            else:
                todo.append((key, path))
    fresh = {k: h for k, p in todo if (h := dhash(p)) is not None}
    if fresh:
        with store.transaction() as conn:
            for k, h in fresh.items():
                conn.execute(S.photos.update().where(S.photos.c.key == k).values(phash=h.hex()))
    return {**out, **fresh}


def near_duplicate_conflicts(store: SqlAnnotationStore, annotator: str, max_distance: int = 48
                             ) -> list[tuple[str, str, int]]:
    """Pairs of photos within ``max_distance`` of 512 bits whose disease or body part differ: (key, key, bits)."""
    hashes = _hashes(store)
    keys = list(hashes)
    if len(keys) < 2:
        return []
    words = np.frombuffer(b"".join(hashes[k] for k in keys), np.uint64).reshape(len(keys), -1)
    values = store.values(annotator)
    out = []
    for i in range(len(keys) - 1):
        dist = np.bitwise_count(words[i + 1:] ^ words[i]).sum(axis=1)
        for j in np.nonzero(dist <= max_distance)[0]:
            a, b = keys[i], keys[i + 1 + int(j)]
            if any(values[a].get(f) != values[b].get(f) for f in HEADS):
                out.append((a, b, int(dist[j])))
    return out


def rank_suspects(store: SqlAnnotationStore, annotator: str, oof: OofPredictions | None) -> list[Suspect]:
    """Every photo, most suspect first: near-duplicate conflicts, then by how little the out-of-fold model
    believes the current label (confident-learning issues count fully, the rest half; each head weighed by the
    model's accuracy on it; the worst head counts)."""
    values = store.values(annotator)
    keys = [p.key for p in store.photos()]
    suspects = {k: Suspect(k, 0.0) for k in keys}
    fields = {f.field: f for f in store.fields()}
    for head in HEADS:
        if oof is None or head not in oof.probs or head not in fields:
            continue
        codes = fields[head].codes
        labelled = [k for k in keys if values[k].get(head) in codes]
        probs, found = oof.for_keys(head, labelled, codes)
        idx = [i for i in range(len(labelled)) if found[i]]
        if len(idx) < 2:
            continue
        labels = np.array([codes.index(values[labelled[i]][head]) for i in idx])
        quality, flagged = label_quality(labels, probs[idx])
        # a head the model rarely gets right says little about a label: weigh it by the model's accuracy there
        weight = float(np.mean(np.argmax(probs[idx], axis=1) == labels))
        for n, i in enumerate(idx):
            s = suspects[labelled[i]]
            score = weight * (1.0 - float(quality[n])) * (1.0 if flagged[n] else 0.5)
            if score > s.score:
                s.score = score
            if flagged[n]:
                best = codes[int(np.argmax(probs[i]))]
                s.reasons.append(f"{head}: model says {best} ({probs[i].max():.0%}), label {values[labelled[i]][head]}")
    for a, b, dist in near_duplicate_conflicts(store, annotator):
        for k, other in ((a, b), (b, a)):
            suspects[k].score = max(suspects[k].score, 2.0 - dist / 512)
            suspects[k].reasons.append(f"near-duplicate of {other} ({dist} bits) with other labels")
    return sorted(suspects.values(), key=lambda s: -s.score)
