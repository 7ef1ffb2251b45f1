"""What a model says about one photo, as plain data the CLI, the viewer and reports all read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.taxonomy import Taxonomy

__all__ = ["LabelScore", "Prediction", "decode_outputs", "softmax"]


@dataclass(frozen=True)
class LabelScore:
    code: str
    name: str
    probability: float
    positive: bool = False
    malignant: bool = False

    def to_dict(self, with_positive: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "name": self.name, "probability": round(self.probability, 6)}
        if with_positive:
            d["positive"] = self.positive
        return d


@dataclass
class Prediction:
    """The differential (descending), body parts and attributes (taxonomy order), LSM maps and tokens.

    ``lsm`` maps a head name to its token-score grid (rows x cols of the model's token grid);
    ``selected`` maps a head name to the LSM-selected token indices (row-major in that grid).
    """

    differential: list[LabelScore]
    body_parts: list[LabelScore]
    attributes: list[LabelScore]
    lsm: dict[str, np.ndarray] = field(default_factory=dict)
    selected: dict[str, list[int]] = field(default_factory=dict)
    grid_size: tuple[int, int] = (0, 0)
    embedding: np.ndarray | None = None
    disease_probs: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    image_size: tuple[int, int] = (0, 0)
    context_used: tuple[str, ...] = ()  # the clinical-context fields the model was given (engine.context)

    @property
    def top(self) -> LabelScore:
        return self.differential[0]

    def entropy(self) -> float:
        """Normalised entropy of the disease distribution: 0 certain, 1 uniform."""
        p = np.array([s.probability for s in self.differential], dtype=np.float64)
        p = p[p > 0]
        n = len(self.differential)
        return float(-(p * np.log(p)).sum() / np.log(n)) if n > 1 else 0.0

    def is_uncertain(self, min_top: float = 0.5, max_entropy: float = 0.75) -> bool:
        return self.top.probability < min_top or self.entropy() > max_entropy

    def to_json(self) -> dict[str, Any]:
        return {
            "differential": [s.to_dict(with_positive=False) for s in self.differential],
            "body_parts": [s.to_dict() for s in self.body_parts],
            "attributes": [s.to_dict() for s in self.attributes],
            "context_used": list(self.context_used),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _head_scores(taxonomy: Taxonomy, head: str, logits: np.ndarray | None, threshold: float) -> list[LabelScore]:
    if logits is None or head not in taxonomy.heads:
        return []
    spec = taxonomy.head(head)
    if spec.multi_label:
        probs = _sigmoid(logits)
        positive = probs >= threshold
    else:
        probs = softmax(logits)
        positive = np.zeros_like(probs, dtype=bool)
        positive[int(probs.argmax())] = True
    return [
        LabelScore(c.code, c.name, float(p), bool(pos), c.malignant)
        for c, p, pos in zip(spec.classes, probs, positive, strict=True)
    ]


def merge_hflip_outputs(outputs: dict[str, np.ndarray], n: int, taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """Flip TTA: rows ``:n`` are the photos, ``n:`` their mirror images. Each head's probabilities are
    averaged and handed back as logits of the averaged distribution (log p for softmax heads, logit p for
    multi-label ones), so decoding is unchanged; LSM maps, tokens and embeddings are the unflipped photo's."""
    out = {k: v[:n] for k, v in outputs.items()}
    for key in ("disease", "disease_fused", "body_part", "attributes"):
        if key not in outputs:
            continue
        head = "disease" if key == "disease_fused" else key
        z = outputs[key].astype(np.float64)
        if taxonomy.head(head).multi_label:
            p = (_sigmoid(z[:n]) + _sigmoid(z[n:])) / 2
            out[key] = np.log(np.clip(p, 1e-12, 1)) - np.log(np.clip(1 - p, 1e-12, 1))
        else:
            p = (softmax(z[:n]) + softmax(z[n:])) / 2
            out[key] = np.log(np.clip(p, 1e-300, 1))
    return out


def decode_outputs(
    outputs: dict[str, np.ndarray],
    index: int,
    taxonomy: Taxonomy,
    thresholds: dict[str, float],
    grid_size: tuple[int, int],
) -> Prediction:
    """Turn row ``index`` of a batch of raw model outputs (numpy) into a :class:`Prediction`."""
    spec = taxonomy.head("disease")
    d_logits = outputs["disease_fused"][index]
    d_probs = softmax(d_logits.astype(np.float64))
    diff = sorted(
        (LabelScore(c.code, c.name, float(p), False, c.malignant) for c, p in zip(spec.classes, d_probs, strict=True)),
        key=lambda s: -s.probability,
    )
    lsm: dict[str, np.ndarray] = {}
    selected: dict[str, list[int]] = {}
    for head in ("disease", "attributes"):
        if f"lsm_{head}" in outputs:
            lsm[head] = outputs[f"lsm_{head}"][index].reshape(grid_size).astype(np.float32)
            selected[head] = [int(i) for i in outputs[f"selected_{head}"][index]]

    def head_logits(h: str) -> np.ndarray | None:
        return outputs[h][index].astype(np.float64) if h in outputs else None

    return Prediction(
        differential=diff,
        body_parts=_head_scores(taxonomy, "body_part", head_logits("body_part"), thresholds.get("body_part", 0.5)),
        attributes=_head_scores(taxonomy, "attributes", head_logits("attributes"), thresholds.get("attributes", 0.5)),
        lsm=lsm,
        selected=selected,
        grid_size=grid_size,
        embedding=outputs["embedding"][index].astype(np.float32) if "embedding" in outputs else None,
        disease_probs=d_probs.astype(np.float32),
    )
