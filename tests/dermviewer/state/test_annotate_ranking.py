"""Ranking suspected label errors on the shared data with the shipped out-of-fold predictions: the flagged
duplicates with conflicting labels come first, labels flipped on purpose rank high, and the out-of-fold file
is read by class code (a retrained model with another class order ranks the same)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import resources
from dermviewer.state.annotate import Edit, SqlAnnotationStore, import_manifest, open_store
from dermviewer.state.annotate.ranking import near_duplicate_conflicts, rank_suspects, read_oof
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA

OOF = Path(resources.__file__).parent / "models" / "default.oof.h5"


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> SqlAnnotationStore:
    store = open_store(tmp_path_factory.mktemp("rank") / "all.dvproj", load_taxonomy("pad_ufes_20"), create=True)
    import_manifest(store, DATA / "manifest.csv", masks=False)
    return store


def _manifest() -> dict[str, dict[str, str]]:
    with (DATA / "manifest.csv").open(newline="") as f:
        return {r["img_id"]: r for r in csv.DictReader(f)}


def test_label_conflict_rows_rank_at_the_top(full: SqlAnnotationStore) -> None:
    rows = _manifest()
    ranked = [s.key for s in rank_suspects(full, "alice", read_oof(OOF))]
    conflicts = [k for k, r in rows.items() if r["label_conflict"] == "1"]
    twin_here = [k for k in conflicts if any(d in rows for d in rows[k]["duplicate_of"].split(";") if d)]
    print("\nlabel_conflict rows ranked (of", len(ranked), "):", {k: ranked.index(k) for k in conflicts})
    assert twin_here, "the shared data should hold at least one conflicting duplicate pair"
    assert sorted(ranked.index(k) for k in twin_here) == list(range(len(twin_here)))  # the very top
    # A conflict row whose twin is held out (not in this folder) can only be found by confident learning, and
    # which of the two published labels is wrong is unknown, so a model may rightly keep it: its rank depends
    # on the model (shipped default 155, student 573 of 666) and is printed above, not asserted.


def test_flipped_labels_rank_high(full: SqlAnnotationStore) -> None:
    """Relabel the 20 photos the model is surest about to the class it finds least likely: they rank near the
    top (written against the out-of-fold interface, so a retrained model's file works the same)."""
    oof = read_oof(OOF)
    values = full.values("mallory")
    correct = []
    for k, v in values.items():
        best = oof.suggestion(k, "disease")
        if best and best[0] == v.get("disease"):
            correct.append((best[1], k))
    flipped = [k for _, k in sorted(correct, reverse=True)[:20]]  # the model's 20 surest right answers
    codes = oof.codes["disease"]
    edits = [Edit(k, "disease", codes[int(np.argmin(oof.probs["disease"][oof.ids.index(k)]))]) for k in flipped]
    full.apply(edits, "mallory")
    ranked = [s.key for s in rank_suspects(full, "mallory", oof)]
    top = set(ranked[: len(ranked) // 10])
    hits = sum(k in top for k in flipped)
    print(f"\n{hits} of 20 flipped labels in the top 10% of {len(ranked)}")
    assert hits >= 18


def test_oof_is_read_by_class_code(full: SqlAnnotationStore, tmp_path: Path) -> None:
    """The same predictions with the disease classes in another order (and one class the project lacks)."""
    src = read_oof(OOF)
    permuted = tmp_path / "permuted.oof.h5"
    order = [5, 3, 1, 0, 2, 4]
    tax = load_taxonomy("pad_ufes_20").to_dict()
    tax["heads"]["disease"]["classes"] = [tax["heads"]["disease"]["classes"][i] for i in order]
    with h5py.File(permuted, "w") as f:
        f.attrs["taxonomy"] = json.dumps(tax)
        f["ids"] = np.array(src.ids, dtype=object).astype("S")
        f["probs/disease"] = src.probs["disease"][:, order]
        f["probs/body_part"] = src.probs["body_part"]
    a = [(s.key, round(s.score, 6)) for s in rank_suspects(full, "alice", src)]
    b = [(s.key, round(s.score, 6)) for s in rank_suspects(full, "alice", read_oof(permuted))]
    assert a == b


def test_near_duplicates_are_found_through_recompression(tmp_path: Path) -> None:
    """A photo filed twice (the second copy resized and re-encoded) with two diagnoses is a conflict; with the
    same labels it is not; distinct photos are never paired."""
    rows = list(_manifest().values())[:20]
    twin = tmp_path / "twin.jpg"
    img = cv2.imread(str(DATA / rows[0]["image"]))
    cv2.imwrite(str(twin), cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 70])
    extra = [dict(rows[0], img_id="twin_conflict", image=str(twin), diagnosis_code="MEL"),
             dict(rows[0], img_id="twin_same", image=str(twin))]
    for r in rows:
        r["image"] = str(DATA / r["image"])
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows + extra)
    assert rows[0]["diagnosis_code"] != "MEL"
    store = open_store(tmp_path / "p.dvproj", load_taxonomy("pad_ufes_20"), create=True)
    import_manifest(store, manifest, masks=False)
    pairs = {frozenset((a, b)) for a, b, _ in near_duplicate_conflicts(store, "alice")}
    assert pairs == {frozenset((rows[0]["img_id"], "twin_conflict")), frozenset(("twin_same", "twin_conflict"))}
    store.close()
