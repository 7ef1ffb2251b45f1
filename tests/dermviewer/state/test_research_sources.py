"""Opening datasets: a folder + labels CSV through a mapping file, an HDF5 pack, bad input, and the
manifest a selection exports (same columns, opens again)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from dermviewer.state.research.dataset import open_folder, open_manifest
from dermviewer.state.research.errors import DatasetError, MappingError
from dermviewer.state.research.export import export_manifest
from dermviewer.state.research.mapping import load_mapping
from dermviewer.state.research.metrics import compute_metrics
from dermviewer.state.research.oof import open_oof
from dermviewer.state.research.pack import open_pack
from dermviewer.state.research.result import EvalResult
from engine.taxonomy import load_taxonomy
from tests.dermviewer.state.researchhelp import SPEC, default_oof

THEIRS = {"ACK": "actinic keratosis", "BCC": "basal cell carcinoma", "MEL": "melanoma", "NEV": "clark nevus",
          "SCC": "dermatofibroma", "SEK": "seborrheic keratosis"}


@pytest.fixture
def foreign_folder(tmp_path):
    """12 real photos labelled in another dataset's words (Derm7pt-like), SCC renamed to a class we lack."""
    ds = open_manifest(SPEC)
    codes = ds.taxonomy.head("disease").codes
    picks = [int(np.flatnonzero(ds.disease == c)[k]) for c in range(6) for k in range(2)]
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = []
    for i in picks:
        src = ds.images.path(i)
        shutil.copy(src, folder / src.name)
        rows.append({"filename": src.name, "diagnosis": THEIRS[codes[ds.disease[i]]]})
    rows.append({"filename": rows[0]["filename"], "diagnosis": "lentigo"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "map.csv").write_text("source,target\nactinic keratosis,ACK\nbasal cell carcinoma,BCC\n"
                                      "melanoma,MEL\nclark nevus,NEV\nseborrheic keratosis,SEK\nlentigo,exclude\n")
    return folder, tmp_path / "labels.csv", tmp_path / "map.csv"


def test_a_mapping_file_counts_unmapped_and_excluded_photos(foreign_folder) -> None:
    folder, labels, mapping = foreign_folder
    tax = load_taxonomy("pad_ufes_20")
    ds = open_folder(folder, labels, taxonomy=tax, mapping=load_mapping(mapping))
    assert len(ds) == 13  # nobody is dropped
    assert ds.mapping.unmapped == {"dermatofibroma": 2}
    assert ds.mapping.excluded == {"lentigo": 1}
    assert ds.mapping.mapped == 10
    assert "2 unmapped (dermatofibroma 2)" in ds.mapping.summary()
    assert ds.label_status.count("unmapped") == 2 and ds.label_status.count("excluded") == 1
    # the metrics count them too: scored + excluded + unmapped covers every photo
    probs = np.full((13, 6), 1 / 6, np.float32)
    res = EvalResult("k", "uniform", {"disease": probs}, None, np.ones(13, bool))
    m = compute_metrics(ds, res)
    assert (m.n_scored, m.n_excluded, m.n_unmapped) == (10, 1, 2)


def test_a_mapping_onto_a_class_we_lack_is_refused(tmp_path, foreign_folder) -> None:
    folder, labels, _ = foreign_folder
    bad = tmp_path / "bad.yaml"
    bad.write_text("melanoma: MELANOMA\n")
    with pytest.raises(MappingError, match="MELANOMA") as err:
        open_folder(folder, labels, taxonomy=load_taxonomy("pad_ufes_20"), mapping=load_mapping(bad))
    assert err.value.path == bad


def test_bad_dataset_files_raise_typed_errors_naming_the_file(tmp_path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("who,what\n1,2\n")
    with pytest.raises(DatasetError, match="photo column") as err:
        open_folder(tmp_path, csv, taxonomy=load_taxonomy("pad_ufes_20"))
    assert err.value.path == csv
    junk = tmp_path / "x.oof.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="out-of-fold") as err:
        open_oof(junk)
    assert err.value.path == junk


def test_an_hdf5_pack_opens_with_labels_pixels_and_subgroups(tmp_path) -> None:
    from training.data.manifest import read_manifest
    from training.data.pack import pack
    from training.data.spec import load_spec

    manifest = read_manifest(load_spec(SPEC)).subset(np.arange(8))
    out = pack(manifest, tmp_path / "eight.h5", size=64, workers=1).path
    ds = open_pack(out, load_taxonomy("pad_ufes_20"))
    ref = open_manifest(SPEC, limit=8)
    assert ds.ids == ref.ids
    np.testing.assert_array_equal(ds.disease, ref.disease)
    np.testing.assert_array_equal(ds.body_part, ref.body_part)
    assert ds.images.load(0).shape == (64, 64, 3)
    assert ds.subgroup("fitzpatrick") == ref.subgroup("fitzpatrick")  # joined from the pack's manifest
    assert ds.images.hash(0).endswith(":pack64") and ds.images.hash(0) != ref.images.hash(0)


def test_a_selection_exports_to_a_manifest_with_the_same_columns(tmp_path) -> None:
    ds, res = open_oof(default_oof(), SPEC)
    wrong_mel = np.flatnonzero(ds.scored & (ds.disease == 2) & (res.predicted() != 2))
    out = export_manifest(ds, wrong_mel, tmp_path / "sub" / "misclassified_melanoma.csv")
    original = pd.read_csv(SPEC.parent / ds.root / "manifest.csv", dtype=str, keep_default_na=False)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == list(original.columns)
    assert len(written) == len(wrong_mel) > 0
    again = open_manifest(out)
    assert again.ids == [ds.ids[i] for i in wrong_mel]
    assert all(again.images.path(i).is_file() for i in range(len(again)))
    assert set(again.disease.tolist()) == {2}
