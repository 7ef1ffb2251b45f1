"""The evaluation cache format shared by the app and ``dermviewer-train evaluate --cache``: shards of a split
run merge into the one file in rank order, once per photo, and a shard of another model is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EvaluationCacheError
from engine.eval_cache import EvaluationCache, cache_file_name, pack_photo_hash, photo_hash

KEY = "c" * 64


def _rows(n: int, start: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    p = np.arange(n * 6, dtype=np.float32).reshape(n, 6) + start
    return {"disease": p, "body_part": p[:, :3]}, p[:, :4] * 2


def test_shards_merge_into_one_cache_in_rank_order_once_per_photo(tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path, KEY, "m", {"disease": list("abcdef")})
    assert cache.path.name == cache_file_name(KEY) == f"{KEY[:24]}.eval.h5"
    cache.append(["h0"], *_rows(1, 0.0))  # already cached before the run
    shard0, shard1, shard10 = cache.shard(0), cache.shard(1), cache.shard(10)
    shard1.append(["h3", "h4"], *_rows(2, 30.0))
    shard0.append(["h0", "h1", "h2"], *_rows(3, 100.0))  # h0 is cached already: skipped
    shard0.append(["h2"], *_rows(1, 20.0))  # re-evaluated in the shard: its newest row wins
    shard10.append(["h4"], *_rows(1, 40.0))  # the same photo in two shards: merged once
    assert [s.path.name for s in cache.shards()] == [f"{KEY[:24]}.eval.shard{r}.h5" for r in (0, 1, 10)]

    assert cache.merge(cache.shards()) == 4
    assert cache.shards() == [] and sorted(p.name for p in tmp_path.iterdir()) == [cache.path.name]
    reopened = EvaluationCache(tmp_path, KEY)
    assert list(reopened.index()) == ["h0", "h1", "h2", "h3", "h4"]  # the order one process would write
    found, probs, emb = reopened.read(["h4", "h2", "h0", "h9"])
    assert found.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(probs["disease"][:3, 0], [36.0, 20.0, 0.0])  # h4 from shard1 (30 + 6)
    np.testing.assert_array_equal(probs["body_part"][1], _rows(1, 20.0)[0]["body_part"][0])
    np.testing.assert_array_equal(emb[1], _rows(1, 20.0)[1][0])
    assert np.isnan(probs["disease"][3]).all()


def test_a_shard_of_another_model_is_refused_naming_it(tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path, KEY)
    other = EvaluationCache.at(cache.shard(0).path, "d" * 64)
    other.append(["h1"], *_rows(1, 0.0))
    with pytest.raises(EvaluationCacheError, match="written for model") as err:
        cache.merge(cache.shards())
    assert err.value.path == other.path and other.path.is_file()  # kept: nothing is lost
    assert not cache.path.exists()


def test_photo_keys_are_the_file_bytes(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"not decoded, only hashed")
    renamed = tmp_path / "b.jpg"
    renamed.write_bytes(photo.read_bytes())
    assert photo_hash(photo) == photo_hash(renamed) == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert pack_photo_hash(photo_hash(photo), 256) == photo_hash(photo) + ":pack256"
