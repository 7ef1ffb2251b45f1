"""Confusion cells, filters and sort orders on the default model's out-of-fold predictions (all 666 photos)."""

from __future__ import annotations

import numpy as np
import pytest

from dermviewer.state.research.metrics import compute_metrics
from dermviewer.state.research.oof import open_oof
from dermviewer.state.research.selection import PhotoFilter, PhotoTable, cell_filter
from dermviewer.state.research.session import ResearchSession
from engine.metrics import classification_report
from tests.dermviewer.state.researchhelp import SPEC, default_oof


@pytest.fixture(scope="module")
def oof():
    return open_oof(default_oof(), SPEC)


def test_oof_joins_the_manifest(oof) -> None:
    ds, res = oof
    assert len(ds) == len(res) == 666
    assert all(ds.images.path(i).is_file() for i in range(0, 666, 37))
    assert ds.has_mask.sum() == 640  # the data README: masks for 640 of the 666 photos
    assert set(ds.subgroup("fitzpatrick")) >= {"1", "2", "3", ""}


def test_metrics_are_engines_and_count_every_photo(oof) -> None:
    ds, res = oof
    m = compute_metrics(ds, res)
    ok = ds.scored
    direct = classification_report(ds.disease[ok], res.disease[ok] / res.disease[ok].sum(1, keepdims=True),
                                   ds.taxonomy.head("disease").codes)
    assert m.disease.balanced_accuracy == pytest.approx(direct.balanced_accuracy)
    assert m.n_scored + m.n_excluded + m.n_unmapped + m.n_missing == 666
    assert m.n_excluded == int(ds.flag("label_conflict").sum()) > 0
    assert m.attributes is not None and 0 < m.attributes.map_class <= 1
    assert m.disease.malignancy is not None and 0 < m.disease.malignancy.sensitivity <= 1


def test_every_confusion_cell_selects_exactly_its_count(oof) -> None:
    ds, res = oof
    session = ResearchSession()
    session.set_dataset(ds, res)
    cm = session.metrics.disease.confusion
    seen: set[int] = set()
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            session.select_cell(t, p)
            shown = session.selection()
            assert len(shown) == cm[t, p], (t, p)
            assert np.all(ds.disease[shown] == t) and np.all(res.predicted()[shown] == p)
            assert not seen & set(shown.tolist())
            seen |= set(shown.tolist())
    assert len(seen) == cm.sum() == session.metrics.n_scored


def test_filters_combine_as_a_conjunction(oof) -> None:
    ds, res = oof
    table = PhotoTable.build(ds, res)
    wrong = PhotoFilter(correct=False)
    mel = PhotoFilter(true_class=frozenset({2}))
    back = PhotoFilter(subgroups={"body_part": frozenset({"back", "chest"})})
    fitz = PhotoFilter(subgroups={"fitzpatrick": frozenset({"2"})})
    masked = PhotoFilter(has_mask=True)
    combined = PhotoFilter(correct=False, true_class=frozenset({2}), has_mask=True,
                           subgroups={"body_part": frozenset({"back", "chest"}), "fitzpatrick": frozenset({"2"})})
    expect = wrong.mask(table) & mel.mask(table) & back.mask(table) & fitz.mask(table) & masked.mask(table)
    np.testing.assert_array_equal(combined.mask(table), expect)
    # each condition against the raw facts
    np.testing.assert_array_equal(wrong.indices(table), np.flatnonzero(ds.scored & (res.predicted() != ds.disease)))
    body = np.array(ds.subgroup("body_part"))
    np.testing.assert_array_equal(back.indices(table), np.flatnonzero(ds.scored & np.isin(body, ["back", "chest"])))
    assert 0 < combined.mask(table).sum() < mel.mask(table).sum()
    # label conflicts are excluded from scoring, so asking for them needs the unscored photos too
    conflicts = PhotoFilter(label_conflict=True, scored_only=False).indices(table)
    np.testing.assert_array_equal(conflicts, np.flatnonzero(ds.flag("label_conflict")))
    assert PhotoFilter(label_conflict=True).indices(table).size == 0


def test_sorting_by_confidence_loss_and_margin(oof) -> None:
    ds, res = oof
    table = PhotoTable.build(ds, res)
    cm = np.array([[np.sum(table.scored & (table.true == t) & (table.pred == p)) for p in range(6)] for t in range(6)])
    np.fill_diagonal(cm, 0)
    t, p = np.unravel_index(int(cm.argmax()), cm.shape)  # the model's most frequent confusion
    idx = cell_filter(int(t), int(p)).indices(table)
    assert len(idx) > 2
    for key in ("confidence", "loss", "margin"):
        up = table.order(idx, key, descending=False)
        values = getattr(table, key)[up]
        assert sorted(up.tolist()) == sorted(idx.tolist())
        assert np.all(np.diff(values) >= 0), key
        down = table.order(idx, key, descending=True)
        assert np.all(np.diff(getattr(table, key)[down]) <= 0), key
    p_row = res.disease[idx[0]]
    assert table.loss[idx[0]] == pytest.approx(-np.log(p_row[t]), rel=1e-5)
