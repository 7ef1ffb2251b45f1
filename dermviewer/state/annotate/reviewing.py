"""A second annotator steps through another's changes by key and decides each one (:class:`ReviewQueue`),
with the two annotators' agreement beside them (:class:`Agreement`). Qt-free: the panel draws it.

Every decision is saved at once, one transaction (:func:`~.review.review_change`): an accept is a row of the
reviews table (reviewer, time, comment), a rejection also puts the owner's previous value back as an audited
edit that names the reviewer. A change the owner has replaced since the queue was built is not decided (the
reviewer would be judging a value that is no longer there).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.errors import ProjectWriteError
from dermviewer.state.annotate.review import cohen_kappa, outline_dice, pending_changes, review_change
from dermviewer.state.annotate.session import KeyAction
from dermviewer.state.annotate.store import IMPORT, OUTLINE, AuditEntry, SqlAnnotationStore
from dermviewer.state.events import Signal

__all__ = ["REVIEW_KEYS", "Agreement", "ReviewQueue", "agreement", "change_text", "other_annotators"]

REVIEW_KEYS: dict[str, KeyAction] = {
    "A": KeyAction("review_accept", text="review: accept this change"),
    "R": KeyAction("review_reject", text="review: reject this change (type an optional comment, then Enter)"),
    "N": KeyAction("review_next", text="review: next change (undecided ones stay pending)"),
    "Right": KeyAction("review_next", text="review: next change"),
    "J": KeyAction("review_next", text="review: next change"),
    "P": KeyAction("review_prev", text="review: previous change"),
    "Left": KeyAction("review_prev", text="review: previous change"),
    "K": KeyAction("review_prev", text="review: previous change"),
    "Esc": KeyAction("review_end", text="review: stop reviewing, back to labelling"),
}
"""While reviewing these take precedence over the labelling keys (A and R are body parts there)."""


def other_annotators(store: SqlAnnotationStore, me: str) -> list[str]:
    """Whoever changed labels in this project, other than ``me`` and the import, in order of first change."""
    a = S.audit.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(a.owner, sa.func.min(a.id)).where(a.owner.notin_([me, IMPORT]))
                            .group_by(a.owner).order_by(sa.func.min(a.id))).all()
    return [r[0] for r in rows]


def change_text(entry: AuditEntry, limit: int = 60) -> str:
    """``field: old → new`` as a reviewer reads it (an outline's audit value is its box/area summary)."""
    def short(v: str) -> str:
        v = v.removeprefix("outline ") if entry.field == OUTLINE else v
        return (v[: limit - 1] + "…" if len(v) > limit else v) or "—"

    return f"{entry.field.removeprefix('attr:')}: {short(entry.old)} → {short(entry.new)}"


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa per field (None: fewer than two photos both labelled) and the outlines' Dice."""

    a: str
    b: str
    kappa: dict[str, float | None]
    dice: float | None
    dice_per_photo: dict[str, float]

    def lines(self) -> list[str]:
        out = [f"{f.removeprefix('attr:')}: κ = {'—' if k is None else f'{k:.3f}'}" for f, k in self.kappa.items()]
        n = len(self.dice_per_photo)
        out.append(f"outline: Dice = {'—' if self.dice is None else f'{self.dice:.3f}'} "
                   f"({n} photo{'' if n == 1 else 's'} both outlined)")
        return out


def agreement(store: SqlAnnotationStore, a: str, b: str) -> Agreement:
    """What the panel shows (reads every label and decodes both annotators' outlines: run it off the UI thread)."""
    mean, per = outline_dice(store, a, b)
    return Agreement(a, b, cohen_kappa(store, a, b), mean, per)


class ReviewQueue:
    """``owner``'s changes pending ``reviewer``'s decision, in the project's photo order, one shown at a time.

    ``changed()`` fires when the shown change or a decision changes; ``failed(reason)`` when a decision could
    not be saved (read-only project, full disk: the decision is not recorded, the change stays pending).
    """

    def __init__(self, store: SqlAnnotationStore, owner: str, reviewer: str) -> None:
        if not owner or owner in (reviewer, IMPORT):
            raise ValueError(f"{reviewer!r} cannot review the changes of {owner!r}")
        self.store, self.owner, self.reviewer = store, owner, reviewer
        with store.engine.connect() as conn:  # not store.photos(): a 10,000-photo project need not be read
            order: dict[str, int] = dict(conn.execute(sa.select(S.photos.c.key, S.photos.c.position)).all())
        fields = {f.field: i for i, f in enumerate(store.fields())}
        self.entries = sorted(pending_changes(store, owner, reviewer),
                              key=lambda e: (order.get(e.key, len(order)), fields.get(e.field, len(fields)), e.id))
        self.position = 0
        self.decisions: dict[int, tuple[bool, str]] = {}  # audit id -> (accepted, comment)
        self.changed = Signal()
        self.failed = Signal()

    @property
    def current(self) -> AuditEntry | None:
        return self.entries[self.position] if self.entries else None

    @property
    def remaining(self) -> int:
        return sum(1 for e in self.entries if e.id not in self.decisions)

    def decision(self, entry: AuditEntry | None = None) -> tuple[bool, str] | None:
        e = entry or self.current
        return None if e is None else self.decisions.get(e.id)

    def go(self, position: int) -> None:
        if self.entries:
            self.position = max(0, min(len(self.entries) - 1, position))
        self.changed.emit()

    def next(self) -> None:
        self.go(self.position + 1)

    def prev(self) -> None:
        self.go(self.position - 1)

    def _still_in_force(self, e: AuditEntry) -> bool:
        latest = [x for x in self.store.audit(e.key, self.owner) if x.field == e.field]
        return bool(latest) and latest[-1].id == e.id

    def decide(self, accept: bool, comment: str = "") -> bool:
        """Save the decision on the shown change, then show the next undecided one; False if nothing was saved."""
        e = self.current
        if e is None or e.id in self.decisions:
            return False
        if not self._still_in_force(e):
            self.failed.emit(f"{self.owner} changed {e.key} {e.field} again since; start the review again")
            return False
        try:
            review_change(self.store, e, self.reviewer, accept, comment.strip())
        except ProjectWriteError as exc:
            self.failed.emit(str(exc))
            return False
        self.decisions[e.id] = (accept, comment.strip())
        after = [i for i in (*range(self.position + 1, len(self.entries)), *range(self.position))
                 if self.entries[i].id not in self.decisions]
        self.go(after[0] if after else self.position)
        return True

    def accept(self) -> bool:
        return self.decide(True)

    def reject(self, comment: str = "") -> bool:
        return self.decide(False, comment)
