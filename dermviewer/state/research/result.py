"""What a model said about every photo of a dataset: probabilities per head and embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["HEADS", "EvalResult"]

HEADS = ("disease", "body_part", "attributes")


@dataclass
class EvalResult:
    """Row i belongs to photo i of the dataset. ``probs["disease"]`` is the fused differential (d');
    rows of photos not (yet) predicted are NaN and ``done`` is False there."""

    model_key: str
    model_name: str
    probs: dict[str, np.ndarray]
    embeddings: np.ndarray | None = None
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    errors: dict[int, str] = field(default_factory=dict)
    folds: np.ndarray | None = None  # out-of-fold files: which CV fold predicted the photo

    def __len__(self) -> int:
        return len(self.done)

    @property
    def disease(self) -> np.ndarray:
        return self.probs["disease"]

    def predicted(self, head: str = "disease") -> np.ndarray:
        """Argmax class per photo; -1 where not predicted."""
        p = self.probs[head]
        out = np.full(len(p), -1, dtype=np.int64)
        ok = self.done & np.isfinite(p).all(axis=1)
        out[ok] = p[ok].argmax(axis=1)
        return out

    @classmethod
    def empty(cls, n: int, sizes: dict[str, int], model_key: str, model_name: str) -> EvalResult:
        return cls(model_key, model_name, {h: np.full((n, c), np.nan, np.float32) for h, c in sizes.items()},
                   None, np.zeros(n, bool))
