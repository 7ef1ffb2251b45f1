"""Review: a second annotator accepts or rejects each change another made, and how well two annotators agree
(Cohen's kappa per field, over photos both labelled; Dice of their outlines).

A rejected change puts the owner's value back to what it was before the change, as an audited edit made by
the reviewer (the audit row names both), so the log still explains every value.
"""

from __future__ import annotations

import time

import numpy as np
import sqlalchemy as sa

from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.outline import Outline, dice
from dermviewer.state.annotate.store import IMPORT, OUTLINE, AuditEntry, SqlAnnotationStore

__all__ = ["cohen_kappa", "outline_dice", "pending_changes", "review_change"]


def pending_changes(store: SqlAnnotationStore, owner: str, reviewer: str) -> list[AuditEntry]:
    """The owner's latest change per photo and field, still in force and not yet decided by ``reviewer``.

    A latest change made by the reviewer (a rejection that put the owner's earlier value back) is not the
    reviewer's to review, even when that earlier value differs from the import."""
    latest: dict[tuple[str, str], AuditEntry] = {}
    for e in store.audit(owner=owner) if owner != IMPORT else ():
        latest[(e.key, e.field)] = e
    with store.engine.connect() as conn:  # one connection for all the value checks (thousands of changes)
        decided = {r[0] for r in conn.execute(sa.select(S.reviews.c.audit_id).where(S.reviews.c.reviewer == reviewer))}

        def in_force(e: AuditEntry) -> bool:
            pid = store.photo_id(e.key)
            return store._effective(conn, pid, owner, e.field) != store._effective(conn, pid, IMPORT, e.field)

        return [e for e in latest.values()
                if e.id not in decided and e.old != e.new and e.annotator != reviewer and in_force(e)]


def review_change(store: SqlAnnotationStore, entry: AuditEntry, reviewer: str, accept: bool, comment: str = "") -> None:
    """Record the decision (one transaction); a rejection restores the value the owner had before."""
    if reviewer == entry.owner:
        raise ValueError("a change is reviewed by another annotator than the one who made it")
    pid = store.photo_id(entry.key)
    with store.transaction() as conn:
        conn.execute(S.reviews.insert().values(audit_id=entry.id, reviewer=reviewer,
                                               decision="accepted" if accept else "rejected",
                                               at=time.time(), comment=comment))
        if not accept:
            old = entry.old
            if entry.field == OUTLINE:  # the audit keeps a summary; the undo log has the outline itself
                u = S.undo_log.c
                old = conn.execute(sa.select(u.old).where(u.annotator == entry.owner, u.photo_id == pid,
                                                          u.field == OUTLINE).order_by(u.id.desc())).scalar() or ""
            store.change(conn, pid, entry.owner, entry.field, old, reviewer,
                         f"rejected in review by {reviewer}" + (f": {comment}" if comment else ""))


def _own(store: SqlAnnotationStore, annotator: str) -> dict[tuple[str, str], str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(S.labels.c.photo_id, S.labels.c.field, S.labels.c.value)
                            .where(S.labels.c.annotator == annotator)).all()
    keys = store.photo_keys()
    return {(keys[pid], f): v for pid, f, v in rows}


def cohen_kappa(store: SqlAnnotationStore, a: str, b: str) -> dict[str, float | None]:
    """Per field, Cohen's kappa of ``a`` against ``b`` over the photos both labelled themselves
    (None with fewer than two such photos; 1.0 when both used one same value throughout)."""
    from sklearn.metrics import cohen_kappa_score

    la, lb = _own(store, a), _own(store, b)
    out: dict[str, float | None] = {}
    for f in store.fields():
        both = sorted(k for k in la if k[1] == f.field and k in lb)
        if len(both) < 2:
            out[f.field] = None
            continue
        ya, yb = [la[k] for k in both], [lb[k] for k in both]
        if len(set(ya) | set(yb)) == 1:
            out[f.field] = 1.0
            continue
        out[f.field] = float(cohen_kappa_score(ya, yb))
    return out


def outline_dice(store: SqlAnnotationStore, a: str, b: str) -> tuple[float | None, dict[str, float]]:
    """Mean Dice of the two annotators' own outlines, and per photo (photos both outlined)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(S.outlines.c.photo_id, S.outlines.c.annotator, S.outlines.c.data_json)
                            .where(S.outlines.c.annotator.in_([a, b]))).all()
    by: dict[int, dict[str, str]] = {}
    for pid, who, text in rows:
        if text:
            by.setdefault(pid, {})[who] = text
    keys = store.photo_keys()
    per = {keys[pid]: dice(Outline.from_json(d[a]).mask(), Outline.from_json(d[b]).mask())
           for pid, d in by.items() if a in d and b in d}
    return (float(np.mean(list(per.values()))) if per else None), per
