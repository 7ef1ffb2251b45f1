"""The Qt-free editing session: the default keymap follows the label schema, re-bindings from the user's
file apply (and a broken file is reported, not fatal), keys drive labels, attribute cycles, unusable marks,
bulk relabel and the model's suggestion; a research-mode selection export opens as a project."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import resources
from dermviewer.state.annotate import UNUSABLE, import_manifest, open_store
from dermviewer.state.annotate.ranking import read_oof
from dermviewer.state.annotate.session import AnnotateSession
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA
from tests.dermviewer.state.test_annotate_store import small_manifest

TAX = load_taxonomy("pad_ufes_20")
OOF = Path(resources.__file__).parent / "models" / "default.oof.h5"


@pytest.fixture
def session(tmp_path: Path) -> AnnotateSession:
    store = open_store(tmp_path / "p.dvproj", TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"), masks=False)
    return AnnotateSession(store, "alice", read_oof(OOF))


def test_default_keys_cover_the_schema_without_clashes(session: AnnotateSession) -> None:
    km = session.keymap
    assert [km[str(i)].value for i in range(1, 7)] == TAX.head("disease").codes
    parts = {a.value for a in km.values() if a.field == "body_part"}
    assert parts == set(TAX.head("body_part").codes)  # every body part has its own letter
    assert [km[f"Alt+{i}"].field for i in range(1, 7)] == [f"attr:{c}" for c in TAX.head("attributes").codes]
    assert {km["J"].action, km["K"].action, km["Ctrl+Z"].action} == {"next", "prev", "undo"}
    assert all(text for _, text in session.help_lines())


def test_keys_drive_labels_cycles_unusable_bulk_and_suggestion(session: AnnotateSession) -> None:
    s = session
    assert s.handle_key("5") and s.value("disease") == "SCC"
    before = s.value("attr:itch")
    order = ["1", "0", ""]
    s.handle_key("Alt+1")
    assert s.value("attr:itch") == order[(order.index(before) + 1) % 3]
    s.handle_key("Ctrl+2")
    assert s.value(UNUSABLE) == "wrong site"
    s.handle_key("Ctrl+0")
    assert s.value(UNUSABLE) == ""
    s.handle_key("Right")
    assert s.index == 1 and not s.handle_key("Ctrl+Alt+F12")
    s.select([3, 4, 7])
    s.handle_key("6")
    assert [s.value("disease", i) for i in (3, 4, 7)] == ["SEK"] * 3
    assert s.store.history("alice")[0][-1] == "disease = SEK on 3 photos"
    s.select([])
    s.go(2)
    s.handle_key("Return")
    want = s.oof.suggestion(s.current.key, "disease")  # type: ignore[union-attr]
    assert want is not None and s.value("disease") == want[0]
    assert s.store.value(s.current.key, "disease", "alice") == want[0]  # saved, not only shown
    assert [e.key for e in s.undo()] == [s.current.key] * 2  # disease and body part, one step


def test_user_rebindings_and_a_broken_keys_file(tmp_path: Path, session: AnnotateSession) -> None:
    keys = tmp_path / "annotate_keys.json"
    keys.write_text(json.dumps({"Space": "Right", "Q": "1", "X": "no-such-key"}))
    s = AnnotateSession(session.store, "alice", None, keys)
    assert s.keymap["Space"].action == "next" and "Right" not in s.keymap
    assert s.keymap["Q"].value == TAX.head("disease").codes[0] and "1" not in s.keymap
    assert len(s.problems) == 1 and "no-such-key" in s.problems[0]
    keys.write_text("{not json")
    broken = AnnotateSession(session.store, "alice", None, keys)
    assert broken.problems and "ignored" in broken.problems[0] and broken.keymap["Right"].action == "next"


def test_a_research_selection_export_opens_as_a_project(tmp_path: Path) -> None:
    from dermviewer.state.research.dataset import open_manifest
    from dermviewer.state.research.export import export_manifest as export_selection

    ds = open_manifest(DATA / "manifest.csv")
    picked = [0, 5, 9, 200]
    selection = export_selection(ds, picked, tmp_path / "selection" / "manifest.csv")
    store = open_store(tmp_path / "sel.dvproj", TAX, create=True)
    report = import_manifest(store, selection, masks=False)
    assert report.added == 4 and not report.missing_photos
    values = store.values("alice")
    assert [values[ds.ids[i]]["disease"] for i in picked] == [TAX.head("disease").codes[ds.disease[i]] for i in picked]
    # compare the files, not the spellings: ../shared may be a symbolic link
    assert [Path(p.path).resolve() for p in store.photos()] == [
        (DATA / "images" / Path(ds.ids[i]).with_suffix(".jpg").name).resolve() for i in picked]
    store.close()


def test_marked_photos_are_kept_out_of_evaluation_through_the_export(tmp_path: Path, session: AnnotateSession) -> None:
    """A spec with ``exclude_from_eval: [unusable]`` over the exported manifest excludes exactly the marked photo."""
    from dermviewer.state.annotate import export_manifest
    from dermviewer.state.research.dataset import open_manifest

    session.go(4)
    session.handle_key("Ctrl+3")  # heavy artefact
    out = export_manifest(session.store, "alice", tmp_path / "corrected" / "manifest.csv")
    spec = tmp_path / "corrected" / "spec.yaml"
    spec.write_text("name: corrected\nroot: .\nmanifest: manifest.csv\ntaxonomy: pad_ufes_20\nimage_column: image\n"
                    "id_column: img_id\nheads:\n  disease: {column: diagnosis_code}\n"
                    "exclude_from_eval: [unusable]\n")
    ds = open_manifest(spec)
    assert out.is_file() and list(np.nonzero(ds.eval_exclude)[0]) == [4]


def test_a_photo_without_out_of_fold_prediction_takes_a_live_one(tmp_path: Path, session: AnnotateSession) -> None:
    from engine.prediction import LabelScore, Prediction

    s = AnnotateSession(session.store, "alice", read_oof(OOF))
    assert not s.needs_live() and s.suggestion("disease") is not None  # the dev photos have out-of-fold ones
    s.oof = None  # e.g. a new photo no cross-validation saw
    assert s.needs_live() and s.suggestion("disease") is None
    seen = []
    s.changed.connect(lambda keys, fields: seen.append(keys))
    pred = Prediction(differential=[LabelScore("MEL", "Melanoma", 0.7), LabelScore("NEV", "Nevus", 0.3)],
                      body_parts=[LabelScore("back", "Back", 0.2), LabelScore("thigh", "Thigh", 0.6)], attributes=[])
    s.set_live(s.current.key, pred)
    assert s.suggestion("disease") == ("MEL", 0.7) and s.suggestion("body_part") == ("thigh", 0.6)
    assert seen == [{s.current.key}] and not s.needs_live()
    s.handle_key("Return")
    assert (s.value("disease"), s.value("body_part")) == ("MEL", "thigh")
