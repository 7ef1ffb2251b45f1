"""Review in the annotate panel, by keys only, on real photos: annotator alice labels photos and outlines one;
the annotator field switches to bob, who labels the same photos, starts the review (Ctrl+R), accepts one of
alice's changes (A), skips one (N) and rejects one with a comment (R, typing, Enter). The store has the
decisions after reopening; the agreement the panel shows (computed on a real job runner, off the UI thread)
is review.cohen_kappa / outline_dice computed directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PySide6.QtCore import QPoint, Qt

from dermviewer.qt.annotate import AnnotatePanel
from dermviewer.qt.workers import QtExecutor
from dermviewer.state.annotate import IMPORT, OUTLINE, import_manifest, open_store
from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.review import cohen_kappa, outline_dice, pending_changes
from dermviewer.state.executor import ComputeSlots
from dermviewer.state.tracked_jobs import TrackedJobs
from engine.taxonomy import load_taxonomy
from tests.dermviewer.qt.test_annotate_panel import press
from tests.dermviewer.state.test_annotate_store import small_manifest

TAX = load_taxonomy("pad_ufes_20")
CODES = TAX.head("disease").codes


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src", n=6))
    store.close()
    return path


def _dab(qtbot, panel: AnnotatePanel, x: float, y: float, radius: int = 30) -> None:
    """One brush stroke at photo pixel (x, y), over an emptied outline: the outline becomes that disc."""
    canvas = panel.canvas
    canvas.set_outline(None)
    panel.set_tool("brush")
    canvas.brush_radius = radius
    t = canvas._target()
    s = t.width() / canvas._size[1]
    at = QPoint(int(t.x() + x * s), int(t.y() + y * s))
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=at)


def _digit(code: str) -> str:
    return str(CODES.index(code) + 1)


def test_reviewer_decides_by_keys_and_sees_the_agreement(qtbot, project: Path) -> None:
    executor = QtExecutor(slots=ComputeSlots(1))
    jobs = TrackedJobs(executor)
    panel = AnnotatePanel(jobs=jobs)
    qtbot.addWidget(panel)
    panel.resize(1300, 800)
    panel.show()
    panel.open_project(project, "alice")
    s = panel.session
    assert s is not None
    imported = [s.store.value(p.key, "disease", IMPORT) for p in s.photos]
    alice = [next(c for c in CODES if c != imported[i]) for i in range(4)]  # a real change on each photo
    for i in range(4):
        press(qtbot, panel, _digit(alice[i]))
        if i == 0:
            _dab(qtbot, panel, 120, 120)
        press(qtbot, panel, "Right")
    assert [s.value("disease", i) for i in range(4)] == alice

    panel.who.selectAll()  # the annotator field sets who is working
    qtbot.keyClicks(panel.who, "bob")
    qtbot.keyClick(panel.who, Qt.Key.Key_Return)
    s = panel.session
    assert s is not None and s.annotator == "bob" and s.index == 0
    bob = [alice[0], alice[1], imported[2], next(c for c in CODES if c not in (alice[3], imported[3]))]
    for i in range(4):  # bob labels the same photos himself: agrees with alice on two
        press(qtbot, panel, _digit(bob[i]))
        if i == 0:
            _dab(qtbot, panel, 135, 120)  # his outline overlaps hers
        press(qtbot, panel, "Right")
    parts_before = [s.value("body_part", i) for i in range(6)]
    assert [panel.review_box.owner.itemText(i) for i in range(panel.review_box.owner.count())] == ["alice"]

    press(qtbot, panel, "Ctrl+R")
    q = panel.review
    assert q is not None and q.owner == "alice" and q.reviewer == "bob"
    assert [(e.key, e.field) for e in q.entries] == [(s.photos[0].key, "disease"), (s.photos[0].key, OUTLINE)] + [
        (s.photos[i].key, "disease") for i in (1, 2, 3)]
    item = panel.review_box.item.text()
    assert s.index == 0 and f"disease: {imported[0]} → {alice[0]}" in item and "1 / 5" in item
    press(qtbot, panel, "A")  # accept alice's disease of photo 0
    other = open_store(project)  # saved at once: another connection sees the decision before anything else happens
    with other.engine.connect() as conn:
        assert conn.execute(sa.select(S.reviews.c.decision)).scalars().all() == ["accepted"]
    other.close()
    assert q.position == 1 and "outline:" in panel.review_box.item.text()
    theirs = s.store.outline(s.photos[0].key, "alice")
    assert theirs is not None and np.array_equal(panel.canvas._mask, theirs.mask())  # her outline is shown
    assert not panel.canvas.editable
    press(qtbot, panel, "N")  # the outline stays pending
    assert q.position == 2 and s.index == 1 and f"disease: {imported[1]} → {alice[1]}" in panel.review_box.item.text()
    press(qtbot, panel, "R")
    assert panel.review_box.comment.isVisible()
    qtbot.keyClicks(panel.review_box.comment, "typical of the import's class")
    qtbot.keyClick(panel.review_box.comment, Qt.Key.Key_Return)
    assert not panel.review_box.comment.isVisible() and q.position == 3
    assert [s.value("body_part", i) for i in range(6)] == parts_before  # A and R reviewed; no body part was set
    press(qtbot, panel, "Escape")
    assert panel.review is None and panel.canvas.editable

    qtbot.waitUntil(lambda: not panel.agreement_timer.isActive() and not jobs.busy, timeout=60_000)
    shown = panel.agreement
    direct = open_store(project)
    kappa, (dice, per) = cohen_kappa(direct, "alice", "bob"), outline_dice(direct, "alice", "bob")
    assert shown is not None and (shown.a, shown.b) == ("alice", "bob")
    assert shown.kappa == kappa and kappa["disease"] is not None and kappa["body_part"] is None
    assert (shown.dice, shown.dice_per_photo) == (dice, per) and dice is not None and 0 < dice < 1
    text = panel.review_box.agreement.text()
    assert f"disease: κ = {kappa['disease']:.3f}" in text and f"outline: Dice = {dice:.3f} (1 photo" in text
    direct.close()
    panel.close()
    jobs.shutdown()

    again = open_store(project)  # the decisions were saved as they were made
    with again.engine.connect() as conn:
        rows = conn.execute(sa.select(S.reviews.c.audit_id, S.reviews.c.reviewer, S.reviews.c.decision,
                                      S.reviews.c.comment).order_by(S.reviews.c.at)).all()
    assert [tuple(r[1:]) for r in rows] == [("bob", "accepted", ""),
                                            ("bob", "rejected", "typical of the import's class")]
    keys = [p.key for p in again.photos()]
    assert again.value(keys[0], "disease", "alice") == alice[0]
    assert again.value(keys[1], "disease", "alice") == imported[1]  # the rejection put the import's value back
    last = again.audit(keys[1])[-1]
    assert (last.annotator, last.owner) == ("bob", "alice") and "typical of the import's class" in last.reason
    assert {(e.key, e.field) for e in pending_changes(again, "alice", "bob")} == {
        (keys[0], OUTLINE), (keys[2], "disease"), (keys[3], "disease")}
    again.close()
