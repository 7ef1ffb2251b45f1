"""The error inspector's figures of one real photo match engine's, and a small dataset sweep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dermviewer.state.research.dataset import open_manifest
from dermviewer.state.research.evaluation import run_evaluation
from dermviewer.state.research.inspection import inspect_photo
from dermviewer.state.research.localisation import localise_dataset
from dermviewer.state.research.neighbours import NeighbourIndex
from dermviewer.state.research.robustness import sample_indices, sweep_dataset
from engine.explain import grad_cam
from engine.masks import load_mask
from engine.metrics.localisation import photo_localisation
from engine.preprocess import preprocess

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


N = 12


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def evaluated(predictor):
    ds = open_manifest(SPEC, limit=N)
    last = list(run_evaluation(predictor, ds, None, batch_size=N))[-1]
    return ds, last.result


@pytest.fixture(scope="module")
def explain_model(predictor):
    return predictor.bundle.build_model("cpu")


def test_localisation_figures_of_one_photo_match_engine(predictor, explain_model, evaluated) -> None:
    ds, res = evaluated
    i = int(np.flatnonzero(ds.has_mask)[0])
    index = NeighbourIndex(res.embeddings, ds.disease, [ds.images.hash(j) for j in range(N)])
    shown = inspect_photo(predictor, explain_model, ds, res, i, index, k=5)

    image = ds.images.load(i)
    pred = predictor.predict(image)
    cls = ds.taxonomy.head("disease").codes.index(pred.top.code)
    cam = grad_cam(explain_model, preprocess(image, predictor.bundle.preprocess), "disease", cls)
    mask = load_mask(ds.mask_paths[i], image.shape[:2])
    direct = photo_localisation(ds.ids[i], mask, cam=cam, selected=pred.selected["disease"], grid=pred.grid_size,
                                class_index=cls)
    assert shown.localisation is not None and shown.localisation.status == "ok"
    for name, value in direct.to_dict().items():
        got = shown.localisation.to_dict()[name]
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=1e-6), name
        else:
            assert got == value, name
    assert not math.isnan(shown.localisation.lsm_hit_rate)
    # the rest of the inspector: maps at the photo's size, the mask, every head, neighbours without the query
    assert shown.cam_pred.shape == image.shape[:2] and shown.mask.shape == image.shape[:2]
    assert [h.head for h in shown.heads] == ["disease", "body_part", "attributes"]
    assert shown.heads[0].true == [ds.taxonomy.head("disease").codes[ds.disease[i]]]
    assert len(shown.neighbours) == 5 and i not in [n.index for n in shown.neighbours]
    if shown.true_class != shown.pred_class:
        assert not np.allclose(shown.cam_true, shown.cam_pred)


def test_dataset_localisation_counts_photos_without_masks(predictor, explain_model, evaluated) -> None:
    ds, _ = evaluated
    picks = [int(np.flatnonzero(ds.has_mask)[0]), int(np.flatnonzero(ds.has_mask)[1])]
    no_mask = np.flatnonzero(~ds.has_mask)
    if no_mask.size:
        picks.append(int(no_mask[0]))
    last = list(localise_dataset(predictor, explain_model, ds, picks))[-1]
    assert last.summary is not None
    assert last.summary.n_scored == 2 and last.summary.n_no_mask == len(picks) - 2
    assert 0 <= last.summary.pointing_game <= 1 and 0 <= last.summary.centre_prior <= 1


def test_a_corruption_sweep_scores_every_level(predictor, evaluated) -> None:
    ds, res = evaluated
    idx = sample_indices(ds.disease, 6)
    items = list(sweep_dataset(predictor, ds, idx, ["gaussian_blur"], [1, 5], batch_size=6))
    last = items[-1]
    assert last.finished and last.done == last.total == 3 * len(idx)
    assert [(p.corruption, p.level) for p in last.points] == [("clean", 0), ("gaussian_blur", 1),
                                                              ("gaussian_blur", 5)]
    clean = last.points[0]
    assert clean.flip_rate == 0
    assert clean.accuracy == pytest.approx(np.mean(res.predicted()[idx] == ds.disease[idx]))
    for p in last.points:
        assert 0 <= p.flip_rate <= 1 and p.confusion.sum() == len(idx)
    # stopping between batches yields no finished item
    stopped = list(sweep_dataset(predictor, ds, idx, ["jpeg"], [3], batch_size=2,
                                 cancelled=lambda: True))
    assert not any(s.finished for s in stopped)
