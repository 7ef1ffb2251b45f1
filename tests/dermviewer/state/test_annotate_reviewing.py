"""Reviewing, Qt-free: the queue follows the photo order, each decision is saved at once and survives reopening,
a rejection's restore is not put back in front of the reviewer, a change replaced since is not decided, a
refused save leaves the change pending; the agreement is review.cohen_kappa / outline_dice; the review keys and
the labelling keys that start it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dermviewer.state.annotate import IMPORT, OUTLINE, Edit, Outline, import_manifest, open_store
from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.review import cohen_kappa, outline_dice, pending_changes
from dermviewer.state.annotate.reviewing import REVIEW_KEYS, ReviewQueue, agreement, change_text, other_annotators
from dermviewer.state.annotate.session import default_keymap
from engine.taxonomy import load_taxonomy
from tests.dermviewer.state.test_annotate_store import assert_audit_matches, small_manifest

TAX = load_taxonomy("pad_ufes_20")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"))
    store.close()
    return path


def _other(store, key: str, field: str = "disease") -> str:
    """A disease code that differs from the imported one (so the edit is a real change)."""
    return next(c for c in TAX.head(field).codes if c != store.value(key, field, IMPORT))


def test_decisions_are_saved_at_once_and_survive_reopening(project: Path) -> None:
    store = open_store(project)
    k = [p.key for p in store.photos()]
    # alice changes photos 5, 1 and 3 (not in photo order), and redraws the outline of photo 2
    for i in (5, 1, 3):
        store.apply([Edit(k[i], "disease", _other(store, k[i]))], "alice")
    box = Outline.from_box((10, 10, 60, 50), (300, 300))
    store.apply([Edit(k[2], OUTLINE, box.to_json())], "alice")
    assert other_annotators(store, "bob") == ["alice"] and other_annotators(store, "alice") == []
    with pytest.raises(ValueError, match="cannot review"):
        ReviewQueue(store, "bob", "bob")

    q = ReviewQueue(store, "alice", "bob")
    assert [(e.key, e.field) for e in q.entries] == [(k[1], "disease"), (k[2], OUTLINE), (k[3], "disease"),
                                                     (k[5], "disease")]
    assert change_text(q.entries[1]).startswith("outline: ") and "box=10,10,60,50" in change_text(q.entries[1])
    assert change_text(q.entries[0]) == f"disease: {store.value(k[1], 'disease', IMPORT)} → " \
                                        f"{store.value(k[1], 'disease', 'alice')}"
    shown = []
    q.changed.connect(lambda: shown.append(q.position))
    assert q.accept() and q.position == 1 and q.remaining == 3  # saved, and on to the next undecided
    assert q.reject("  the lesion is bigger  ") and q.position == 2
    assert store.outline(k[2], "alice") == store.outline(k[2], IMPORT)  # the imported mask is back
    q.prev()
    assert q.position == 1 and not q.accept()  # decided already: a second decision is refused
    q.go(3)
    third = next(c for c in TAX.head("disease").codes
                 if c not in (store.value(k[5], "disease", "alice"), store.value(k[5], "disease", IMPORT)))
    store.apply([Edit(k[5], "disease", third)], "alice")  # alice changes it again meanwhile
    problems: list[str] = []
    q.failed.connect(problems.append)
    assert not q.accept() and problems and "again since" in problems[0]
    assert shown and q.decision(q.entries[0]) == (True, "")
    assert q.decision(q.entries[1]) == (False, "the lesion is bigger")
    store.close()

    again = open_store(project)  # nothing waits for a save: the decisions are in the file
    with again.engine.connect() as conn:
        rows = conn.execute(sa.select(S.reviews.c.reviewer, S.reviews.c.decision, S.reviews.c.comment)
                            .order_by(S.reviews.c.at)).all()
    assert [tuple(r) for r in rows] == [("bob", "accepted", ""), ("bob", "rejected", "the lesion is bigger")]
    last = again.audit(k[2])[-1]
    assert (last.annotator, last.owner, last.field) == ("bob", "alice", OUTLINE)
    assert "rejected in review by bob: the lesion is bigger" in last.reason
    pending = {(e.key, e.field) for e in pending_changes(again, "alice", "bob")}
    assert pending == {(k[3], "disease"), (k[5], "disease")}  # the decided two are gone, the replaced one is new
    assert_audit_matches(again)
    again.close()


def test_a_rejection_that_restores_an_earlier_own_value_is_not_pending_again(project: Path) -> None:
    store = open_store(project)
    k = store.photos()[0].key
    codes = [c for c in TAX.head("disease").codes if c != store.value(k, "disease", IMPORT)]
    store.apply([Edit(k, "disease", codes[0])], "alice")
    store.apply([Edit(k, "disease", codes[1])], "alice")
    q = ReviewQueue(store, "alice", "bob")
    assert [e.new for e in q.entries] == [codes[1]]
    assert q.reject("first guess was right")
    assert store.value(k, "disease", "alice") == codes[0]  # alice's earlier value, not the import's
    assert pending_changes(store, "alice", "bob") == []  # bob's own restore is not his to review
    assert ReviewQueue(store, "alice", "bob").current is None
    store.close()


def test_a_refused_decision_stays_pending(project: Path) -> None:
    store = open_store(project)
    k = store.photos()[0].key
    store.apply([Edit(k, "disease", _other(store, k))], "alice")
    q = ReviewQueue(store, "alice", "bob")

    @sa.event.listens_for(store.engine, "connect")
    def _ro(dbapi_conn, _rec) -> None:
        dbapi_conn.execute("PRAGMA query_only=ON")

    store.engine.dispose()
    problems: list[str] = []
    q.failed.connect(problems.append)
    assert not q.reject("no")
    assert problems and "read-only" in problems[0] and str(project) in problems[0]
    assert q.remaining == 1 and q.decision() is None
    store.close()
    again = open_store(project)
    assert len(pending_changes(again, "alice", "bob")) == 1
    again.close()


def test_agreement_is_kappa_and_dice_of_the_two_annotators(project: Path) -> None:
    store = open_store(project)
    k = [p.key for p in store.photos()]
    a = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK", "ACK", "BCC"]
    b = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK", "BCC", "ACK"]
    store.apply([Edit(k[i], "disease", v) for i, v in enumerate(a)], "alice")
    store.apply([Edit(k[i], "disease", v) for i, v in enumerate(b)], "bob")
    store.apply([Edit(k[0], OUTLINE, Outline.from_box((0, 0, 100, 100), (300, 300)).to_json())], "alice")
    store.apply([Edit(k[0], OUTLINE, Outline.from_box((0, 0, 100, 50), (300, 300)).to_json())], "bob")
    got = agreement(store, "alice", "bob")
    assert got.kappa == cohen_kappa(store, "alice", "bob") and got.kappa["disease"] is not None
    mean, per = outline_dice(store, "alice", "bob")
    assert (got.dice, got.dice_per_photo) == (mean, per) and mean == pytest.approx(2 * 5000 / 15000)
    lines = got.lines()
    assert f"disease: κ = {got.kappa['disease']:.3f}" in lines and "body_part: κ = —" in lines
    assert lines[-1] == f"outline: Dice = {mean:.3f} (1 photo both outlined)"
    store.close()


def test_review_keys_do_not_clash_with_the_labelling_keys_that_start_and_toggle() -> None:
    km = default_keymap([(f, [(c.code, c.name) for c in TAX.head(h).classes])
                         for f, h in (("disease", "disease"), ("body_part", "body_part"))])
    assert km["Ctrl+L"].action == "overlay" and km["Ctrl+R"].action == "review"
    assert {km["A"].value, km["R"].value} == {"abdomen", "arm"}  # labelling: body parts ...
    assert (REVIEW_KEYS["A"].action, REVIEW_KEYS["R"].action) == ("review_accept", "review_reject")  # ... reviewing
    assert not {"Ctrl+L", "Ctrl+R", "Ctrl+Z"} & set(REVIEW_KEYS)
    # the window's shortcuts (menus.py) the panel does not take over: open / model / info / export
    assert not {"Ctrl+O", "Ctrl+M", "Ctrl+I", "Ctrl+E", "Ctrl+Q"} & (set(km) | set(REVIEW_KEYS))
