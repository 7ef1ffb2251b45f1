"""``dermviewer-train evaluate --cache`` under torchrun writes the research mode's evaluation cache: the app opens
it and predicts nothing, a single process writes the same cache (and resumes one), another model reuses none.

Real PAD-UFES-20 photos (the first 16 manifest rows), the torch backend on both sides (the key names it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from trainhelp import REPO, SPEC

import resources
from engine.errors import EvaluationCacheError
from engine.eval_cache import EvaluationCache
from engine.inference import Predictor
from training.cli import main

N = 16
DEFAULT = Path(resources.default_model_path())
STUDENT = DEFAULT.with_name("student.dmvb")


def _args(bundle: Path, cache: Path, limit: int) -> list[str]:
    return ["evaluate", "--bundle", str(bundle), "--backend", "torch", "--cache", str(cache),
            "--set", f"data.limit={limit}", "--threads", "1"]


def _summary(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"hash": f["hash"].asstr()[()], "embedding": f["embedding"][()]}
        out.update({f"probs/{h}": f[f"probs/{h}"][()] for h in f["probs"]})
    return out


@pytest.fixture(scope="module")
def two_process_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One 2-process gloo run over N photos (the expensive part: shared by the tests)."""
    folder = tmp_path_factory.mktemp("torchrun") / "evaluations"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DERMVIEWER_CACHE_DIR": str(folder.parent / "cache")}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "training.cli", *_args(DEFAULT, folder, N)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[rank 0/2] 8 photos in this slice" in run.stderr and "[rank 1/2] 8 photos in this slice" in run.stderr
    return folder, _summary(run.stdout)


@pytest.fixture(scope="module")
def app_predictor() -> Predictor:
    """The model as the app loads it with the torch backend (``ModelHost.prepare``)."""
    from engine.bundle import load_bundle

    return Predictor(load_bundle(DEFAULT), device="cpu", backend="torch")


class NoInference:
    """The app's predictor with inference forbidden: a reused cache must not need it."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner

    def predict_batch(self, images: list[Any]) -> Any:
        raise AssertionError(f"the app predicted {len(images)} photos the cache should have held")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_two_process_cache_is_reused_by_the_app_without_inference(two_process_cache, app_predictor) -> None:
    from dermviewer.state.research.cache import EvaluationCache as AppCache
    from dermviewer.state.research.dataset import open_manifest
    from dermviewer.state.research.evaluation import model_checksum as app_checksum
    from dermviewer.state.research.evaluation import run_evaluation

    folder, summary = two_process_cache
    assert summary["processes"] == 2 and summary["photos"] == N and summary["predicted"] == N
    assert summary["merged_rows"] == N and summary["cached_before"] == 0
    key = app_checksum(app_predictor)
    assert summary["model_key"] == key
    assert sorted(p.name for p in folder.iterdir()) == [f"{key[:24]}.eval.h5"]  # shards merged and removed

    ds = open_manifest(SPEC, limit=N)  # as the research panel opens the dataset
    cache = AppCache(folder, key, app_predictor.bundle.name)
    found, _, _ = cache.read([ds.images.hash(i) for i in range(N)])
    assert found.all()  # the panel then shows the evaluation at once
    last = list(run_evaluation(NoInference(app_predictor), ds, cache))[-1]
    assert last.result is not None and last.from_cache == N and last.predicted == 0 and last.result.done.all()
    for i in (2, N - 3):  # one photo of each rank's slice, computed by the app itself
        direct = app_predictor.predict(ds.images.load(i))
        np.testing.assert_allclose(last.result.disease[i], direct.disease_probs, atol=1e-5)
        np.testing.assert_allclose(last.result.probs["body_part"][i], [s.probability for s in direct.body_parts],
                                   atol=1e-5)
        np.testing.assert_allclose(last.result.embeddings[i], direct.embedding, atol=1e-5)


def test_a_single_process_writes_the_same_cache_and_resumes(two_process_cache, tmp_path, capsys) -> None:
    folder, summary = two_process_cache
    assert main(_args(DEFAULT, tmp_path, 10)) == 0
    assert _summary(capsys.readouterr().out)["predicted"] == 10
    assert main(_args(DEFAULT, tmp_path, N)) == 0  # resumes: only the last N - 10 photos are predicted
    resumed = _summary(capsys.readouterr().out)
    assert resumed["processes"] == 1 and resumed["cached_before"] == 10 and resumed["predicted"] == N - 10
    name = f"{summary['model_key'][:24]}.eval.h5"
    single, merged = _read_all(tmp_path / name), _read_all(folder / name)
    assert set(single) == set(merged)
    np.testing.assert_array_equal(single["hash"], merged["hash"])  # same photos, same row order
    for k in single:
        if k != "hash":
            np.testing.assert_allclose(single[k], merged[k], atol=1e-5, err_msg=k)


def test_another_model_does_not_reuse_the_cache(two_process_cache, capsys) -> None:
    folder, summary = two_process_cache
    default_file = folder / f"{summary['model_key'][:24]}.eval.h5"
    before = default_file.read_bytes()
    assert main(_args(STUDENT, folder, 4)) == 0
    student = _summary(capsys.readouterr().out)
    assert student["model_key"] != summary["model_key"]
    assert student["cached_before"] == 0 and student["predicted"] == 4  # nothing of the default model's reused
    assert Path(student["cache"]).is_file() and Path(student["cache"]) != default_file
    assert default_file.read_bytes() == before
    with pytest.raises(EvaluationCacheError, match="written for model"):  # handed the other model's file
        EvaluationCache.at(default_file, student["model_key"]).index()
