"""The evaluation run on real photos with the bundled model: cached results are reused without inference,
a changed model invalidates them, and a cancelled run resumes where it stopped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dermviewer.state.research.cache import EvaluationCache
from dermviewer.state.research.dataset import open_manifest
from dermviewer.state.research.evaluation import model_checksum, run_evaluation
from engine.inference import Predictor

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


class CountingPredictor:
    """Forwards to a real Predictor and counts every photo sent to ``predict_batch``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.photos = 0

    def predict_batch(self, images: list[Any]) -> Any:
        self.calls += 1
        self.photos += len(images)
        return self.inner.predict_batch(images)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


N = 20


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def subset():
    return open_manifest(SPEC, limit=N)


def _run(predictor, ds, cache, **kw):
    items = list(run_evaluation(predictor, ds, cache, **kw))
    return items[-1]


def test_cached_evaluation_is_reused_without_inference(predictor, subset, tmp_path) -> None:
    key = model_checksum(predictor)
    counting = CountingPredictor(predictor)
    first = _run(counting, subset, EvaluationCache(tmp_path, key), batch_size=8)
    assert counting.photos == N and first.result is not None and first.result.done.all()
    assert first.from_cache == 0 and first.predicted == N

    again = CountingPredictor(predictor)
    second = _run(again, subset, EvaluationCache(tmp_path, key), batch_size=8)  # a fresh cache object: reopened
    assert again.calls == 0
    assert second.from_cache == N
    np.testing.assert_array_equal(second.result.disease, first.result.disease)
    np.testing.assert_array_equal(second.result.embeddings, first.result.embeddings)
    # what was cached is what the model says about the photo
    direct = predictor.predict(subset.images.load(3))
    np.testing.assert_allclose(second.result.disease[3], direct.disease_probs, atol=1e-5)


def test_a_changed_model_invalidates_the_cache(predictor, subset, tmp_path) -> None:
    _run(predictor, subset, EvaluationCache(tmp_path, model_checksum(predictor)), batch_size=8)
    bundle = predictor.bundle
    name = next(k for k, v in bundle.state_dict.items() if v.is_floating_point() and v.ndim == 2)
    weights = dict(bundle.state_dict)
    weights[name] = weights[name] * 1.01
    changed = Predictor(dataclasses.replace(bundle, state_dict=weights, path=None), device="cpu")
    key = model_checksum(changed)
    assert key != model_checksum(predictor)
    counting = CountingPredictor(changed)
    last = _run(counting, subset, EvaluationCache(tmp_path, key), batch_size=8)
    assert counting.photos == N and last.from_cache == 0


def test_a_cancelled_evaluation_resumes_where_it_stopped(predictor, subset, tmp_path) -> None:
    key = model_checksum(predictor)
    counting = CountingPredictor(predictor)
    items = []
    for item in run_evaluation(counting, subset, EvaluationCache(tmp_path, key), batch_size=5,
                               cancelled=lambda: counting.photos >= N // 2):
        items.append(item)
    assert counting.photos == N // 2  # stopped between batches, halfway
    assert items[-1].result is None and items[-1].done == N // 2
    assert items[-1].eta_s is not None and items[-1].eta_s > 0

    resumed = CountingPredictor(predictor)
    last = _run(resumed, subset, EvaluationCache(tmp_path, key), batch_size=5)
    assert last.from_cache == N // 2 and resumed.photos == N - N // 2  # only the second half is predicted
    full = _run(predictor, subset, None, batch_size=4)
    np.testing.assert_allclose(last.result.disease, full.result.disease, atol=1e-5)


def test_an_unreadable_photo_is_reported_and_the_run_goes_on(predictor, subset, tmp_path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    subset.images.paths[1] = bad
    subset.images._hashes.pop(1, None)
    try:
        last = _run(predictor, subset, None, batch_size=8)
    finally:
        subset.images.paths[1] = open_manifest(SPEC, limit=N).images.paths[1]
        subset.images._hashes.pop(1, None)
    assert set(last.result.errors) == {1} and "broken.jpg" in last.result.errors[1]
    assert last.result.done.sum() == N - 1 and last.done == N
