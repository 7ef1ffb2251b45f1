"""Running the loaded model over a dataset, in batches, resumable through the evaluation cache.

:func:`run_evaluation` is a plain generator: it takes a ``cancelled`` check and yields an
:class:`EvalProgress` after each batch (done, total, throughput, ETA), so the app's job runner (or
any worker) can show progress and stop it between batches; the last item carries the result. Photos
already in the cache are never predicted again, which is also how a cancelled run resumes.

The cache format, the model checksum and the rows stored per photo are :mod:`engine.eval_cache`
(re-exported here), shared with ``dermviewer-train evaluate --cache``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dermviewer.state.research.cache import EvaluationCache
from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.errors import DatasetError
from dermviewer.state.research.result import HEADS, EvalResult
from engine.errors import DermViewerError
from engine.eval_cache import model_checksum, predictions_to_rows
from engine.inference import Predictor

__all__ = ["EvalProgress", "check_taxonomy", "model_checksum", "predictions_to_rows", "run_evaluation"]


def check_taxonomy(predictor: Predictor, dataset: EvalDataset) -> None:
    """The dataset's labels are indices into the model's classes; refuse a silent mismatch."""
    model, data = predictor.bundle.taxonomy, dataset.taxonomy
    for head in ("disease", "body_part"):
        if head in model.heads and head in data.heads and model.head(head).codes != data.head(head).codes:
            raise DatasetError(f"the model's {head} classes {model.head(head).codes} differ from the dataset's "
                               f"{data.head(head).codes}; reopen the dataset for this model (or give a mapping file)",
                               dataset.source)


@dataclass(frozen=True)
class EvalProgress:
    done: int  # photos with a result (cached or predicted) or a recorded error
    total: int
    from_cache: int
    predicted: int  # predicted in this run
    elapsed_s: float
    eta_s: float | None
    result: EvalResult | None = None  # only on the last item

    @property
    def rate(self) -> float:
        """Photos per second predicted in this run."""
        return self.predicted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def text(self) -> str:
        eta = "" if self.eta_s is None else f", about {self.eta_s:.0f} s left"
        return f"{self.done} / {self.total} photos ({self.from_cache} cached, {self.rate:.1f}/s{eta})"


def run_evaluation(
    predictor: Predictor,
    dataset: EvalDataset,
    cache: EvaluationCache | None = None,
    *,
    batch_size: int = 16,
    cancelled: Callable[[], bool] = lambda: False,
    model_key: str | None = None,
) -> Iterator[EvalProgress]:
    """Predict every photo not yet in ``cache``; stop between batches when ``cancelled()`` is true.

    A photo that cannot be read is recorded in ``result.errors`` (naming the file) and the run goes on.
    """
    check_taxonomy(predictor, dataset)
    t0 = time.perf_counter()
    n = len(dataset)
    key = model_key or (cache.model_key if cache is not None else model_checksum(predictor))
    sizes = {h: len(s) for h, s in predictor.bundle.taxonomy.heads.items() if h in HEADS}
    result = EvalResult.empty(n, sizes, key, predictor.bundle.name)
    hashes = [dataset.images.hash(i) for i in range(n)]
    from_cache = 0
    if cache is not None:
        found, probs, emb = cache.read(hashes)
        for head, p in probs.items():
            if head in result.probs:
                result.probs[head][found] = p[found]
        if emb is not None:
            result.embeddings = np.full((n, emb.shape[1]), np.nan, np.float32)
            result.embeddings[found] = emb[found]
        result.done[found] = True
        from_cache = int(found.sum())
    todo = [i for i in range(n) if not result.done[i]]
    predicted = 0

    def progress(final: bool = False) -> EvalProgress:
        elapsed = time.perf_counter() - t0
        left = len(todo) - predicted - len(result.errors)
        eta = left * elapsed / predicted if predicted and left else (0.0 if not left else None)
        return EvalProgress(from_cache + predicted + len(result.errors), n, from_cache, predicted, elapsed, eta,
                            result if final else None)

    yield progress()
    for start in range(0, len(todo), max(1, batch_size)):
        if cancelled():
            return
        batch: list[tuple[int, Any]] = []
        for i in todo[start : start + batch_size]:
            try:
                batch.append((i, dataset.images.load(i)))
            except DermViewerError as exc:
                result.errors[i] = str(exc)
        if batch:
            preds = predictor.predict_batch([a for _, a in batch])
            probs, emb = predictions_to_rows(preds)
            idx = np.array([i for i, _ in batch])
            for head, p in probs.items():
                if head in result.probs:
                    result.probs[head][idx] = p
            if emb is not None:
                if result.embeddings is None:
                    result.embeddings = np.full((n, emb.shape[1]), np.nan, np.float32)
                result.embeddings[idx] = emb
            result.done[idx] = True
            predicted += len(batch)
            if cache is not None:
                cache.append([hashes[i] for i in idx], probs, emb)
        yield progress()
    yield progress(final=True)
