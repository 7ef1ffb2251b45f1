"""Nearest neighbours, model comparison and subgroup tables on the shipped out-of-fold predictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dermviewer.state.research.compare import compare_models
from dermviewer.state.research.embedding_map import embedding_map
from dermviewer.state.research.neighbours import NeighbourIndex
from dermviewer.state.research.oof import open_oof
from dermviewer.state.research.selection import PhotoTable
from dermviewer.state.research.subgroups import subgroup_table
from tests.dermviewer.state.researchhelp import SPEC, default_oof


@pytest.fixture(scope="module")
def oof():
    return open_oof(default_oof(), SPEC)


def test_nearest_neighbours_never_include_the_query(oof) -> None:
    ds, res = oof
    hashes = [ds.images.hash(i) for i in range(len(ds))]
    index = NeighbourIndex(res.embeddings, ds.disease, hashes)
    shares = []
    for q in range(0, len(ds), 7):
        near = index.of_row(q, k=5)
        assert len(near) == 5
        assert q not in [n.index for n in near]
        assert all(hashes[n.index] != hashes[q] for n in near)
        sims = [n.similarity for n in near]
        assert sims == sorted(sims, reverse=True)
        assert all(n.shares_label == (ds.disease[n.index] == ds.disease[q]) for n in near)
        shares += [n.shares_label for n in near]
    # the embedding carries the diagnosis: neighbours share it far more often than chance (~0.25)
    assert np.mean(shares) > 0.35


def test_a_query_equal_to_a_reference_row_is_still_excluded(oof) -> None:
    ds, res = oof
    index = NeighbourIndex(res.embeddings, ds.disease)
    near = index.query(res.embeddings[10], int(ds.disease[10]), 5, exclude=10)
    assert 10 not in [n.index for n in near]


def test_a_model_compared_with_itself_has_no_disagreements(oof) -> None:
    ds, res = oof
    cmp = compare_models(ds, res, res, n_boot=200)
    assert cmp.disagreements == []
    assert all(d == 0 or np.isnan(d) for d in cmp.deltas.values())
    assert cmp.accuracy_ci.low == cmp.accuracy_ci.high == 0


def test_two_models_disagree_on_exactly_the_photos_whose_top_class_differs(oof) -> None:
    """B: the default's OOF probabilities with the top two classes swapped on every fifth scored photo."""
    ds, res = oof
    probs = res.disease.copy()
    changed = np.flatnonzero(ds.scored)[::5]
    for i in changed:
        a, b = np.argsort(-probs[i])[:2]
        probs[i, [a, b]] = probs[i, [b, a]]
    other = dataclasses.replace(res, model_name="swapped", probs={**res.probs, "disease": probs})
    cmp = compare_models(ds, res, other, n_boot=300)
    assert cmp.disagreements == changed.tolist()
    d = cmp.deltas["BMA"]
    assert cmp.bma_ci.low <= d <= cmp.bma_ci.high
    assert cmp.n_photos == int(ds.scored.sum())
    shipped = sorted(p for p in default_oof().parent.glob("*.oof.h5") if p != default_oof())
    if shipped:  # a second shipped model (the student today): its list is where the two top classes differ
        _, second = open_oof(shipped[0], SPEC)
        expect = np.flatnonzero(res.predicted() != second.predicted())
        assert compare_models(ds, res, second, n_boot=100).disagreements == expect.tolist()


def test_subgroups_cover_the_scored_photos_and_mark_small_groups(oof) -> None:
    ds, res = oof
    table = PhotoTable.build(ds, res)
    rows = subgroup_table(table, res.disease, 6, n_boot=200)
    for column in ("body_part", "fitzpatrick", "sex", "age_band"):
        mine = [r for r in rows if r.column == column]
        assert sum(r.n for r in mine) == int(table.scored.sum())
    for r in rows:
        assert r.too_small == (r.n < 30 or r.n_classes < 2)
        if r.accuracy_ci is not None:
            assert r.accuracy_ci.low <= r.accuracy + 1e-9 and r.accuracy - 1e-9 <= r.accuracy_ci.high
    fitz5 = next(r for r in rows if r.column == "fitzpatrick" and r.value == "5")
    assert fitz5.too_small  # two photos
    assert any(not r.too_small for r in rows if r.column == "fitzpatrick")


def test_embedding_map_places_every_photo(oof) -> None:
    _, res = oof
    xy = embedding_map(res.embeddings[:120], "pca")
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    assert xy.std(axis=0).min() > 0


def test_reopening_defers_only_the_attribute_metrics(oof) -> None:
    from dermviewer.state.research.metrics import attribute_metrics, compute_metrics
    from dermviewer.state.research.session import ResearchSession, prepare_result

    ds, res = oof
    quick = prepare_result(ds, res, attributes=False)
    assert quick.metrics.attributes is None and quick.metrics.disease is not None
    session = ResearchSession()
    session.set_dataset(ds)
    session.set_result(res, quick)
    arrived: list[bool] = []
    session.metrics_changed.connect(lambda: arrived.append(True))
    assert not session.add_attribute_metrics(dataclasses.replace(res), attribute_metrics(ds, res))  # another result
    assert session.add_attribute_metrics(res, attribute_metrics(ds, res)) and arrived == [True]
    full = compute_metrics(ds, res)
    assert session.metrics.attributes == full.attributes
    assert session.metrics.disease.balanced_accuracy == full.disease.balanced_accuracy


def test_a_cache_file_of_another_model_is_refused_naming_it(tmp_path) -> None:
    from dermviewer.state.research.cache import EvaluationCache
    from dermviewer.state.research.errors import CacheError

    a = EvaluationCache(tmp_path, "a" * 64, "model a")
    a.append(["h1", "h2"], {"disease": np.eye(2, 6, dtype=np.float32)}, None)
    found, probs, _ = EvaluationCache(tmp_path, "a" * 64).read(["h2", "h3", "h1"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(probs["disease"][0], np.eye(2, 6)[1])
    other = EvaluationCache(tmp_path, "a" * 24 + "b" * 40)  # same file name prefix, another model
    assert other.path == a.path
    with pytest.raises(CacheError, match="written for model") as err:
        other.index()
    assert err.value.path == a.path


def test_exported_tables_leave_unknown_numbers_empty(tmp_path) -> None:
    from dermviewer.state.research.export import export_table

    out = export_table(tmp_path / "t.csv", ["name", "value"], [["a", 0.5], ["b", float("nan")]])
    assert out.read_text().splitlines() == ["name,value", "a,0.5", "b,"]
