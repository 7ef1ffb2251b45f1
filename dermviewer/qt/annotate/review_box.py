"""Review in the annotate panel: the working annotator steps through another annotator's pending changes by key
(A accept, R reject with an optional comment, N / P next and previous, Esc back to labelling), sees old -> new
and the photo (with the owner's outline), and each decision is saved at once. Beside it, the two annotators'
agreement: Cohen's kappa per field and the outlines' Dice, computed on the job runner.

The decisions live in :class:`~dermviewer.state.annotate.reviewing.ReviewQueue`; a mixin of
:class:`~dermviewer.qt.annotate.panel.AnnotatePanel` plus the box it draws in.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from dermviewer.state.annotate.outline import Outline
from dermviewer.state.annotate.reviewing import (
    REVIEW_KEYS,
    Agreement,
    ReviewQueue,
    agreement,
    change_text,
    other_annotators,
)
from dermviewer.state.debounce import LatestOnly
from dermviewer.state.executor import Lane

__all__ = ["AGREEMENT_QUIET_MS", "PanelReview", "ReviewBox"]

AGREEMENT_QUIET_MS = 600
"""Decisions in a quick run recompute the agreement once, this long after the last: over 10,000 photos it takes
seconds of Python on a worker thread, which would slow the next keypress (one GIL) if started after each."""


class _CommentEdit(QLineEdit):
    """Esc cancels; Enter rejects and stops there (QLineEdit passes Enter on to its parent, where the panel
    would take it for "accept the model's suggestion" on the next photo)."""

    cancelled = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
            event.accept()
            return
        super().keyPressEvent(event)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()


class ReviewBox(QWidget):
    """Whose changes to review, the change shown, the rejection comment and the agreement."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(QLabel("<b>Review</b>"))
        row = QHBoxLayout()
        row.addWidget(QLabel("Changes of:"))
        self.owner = QComboBox()
        self.owner.setObjectName("annotate_review_owner")
        self.owner.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addWidget(self.owner, 1)
        self.start = QPushButton("Review (Ctrl+R)")
        self.start.setObjectName("annotate_review_start")
        self.start.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addWidget(self.start)
        layout.addLayout(row)
        self.item = QLabel("")
        self.item.setObjectName("annotate_review_item")
        self.item.setWordWrap(True)
        layout.addWidget(self.item)
        self.comment = _CommentEdit()
        self.comment.setObjectName("annotate_review_comment")
        self.comment.setPlaceholderText("Why reject? (optional) - Enter rejects, Esc cancels")
        self.comment.hide()
        layout.addWidget(self.comment)
        self.agreement = QLabel("")
        self.agreement.setObjectName("annotate_agreement")
        self.agreement.setWordWrap(True)
        self.agreement.setStyleSheet("color: #555;")
        layout.addWidget(self.agreement)


class PanelReview:
    """Needs the panel's ``session``, ``jobs``, ``message``, ``annotator``, ``canvas``, ``review_box``,
    ``setFocus`` and ``_show_photo``."""

    session: Any
    jobs: Any
    message: Any
    annotator: str
    canvas: Any
    review_box: ReviewBox
    review: ReviewQueue | None
    agreement: Agreement | None
    _agreement_ticket: LatestOnly
    _agreement_running: bool
    _agreement_again: bool
    agreement_timer: QTimer

    def _connect_review(self) -> None:
        self.review, self.agreement, self._agreement_ticket = None, None, LatestOnly()
        self._agreement_running = self._agreement_again = False
        self.agreement_timer = QTimer(self)  # type: ignore[arg-type]
        self.agreement_timer.setSingleShot(True)
        self.agreement_timer.setInterval(AGREEMENT_QUIET_MS)
        self.agreement_timer.timeout.connect(self._refresh_agreement)
        box = self.review_box
        box.start.clicked.connect(lambda: self.start_review())
        box.owner.currentTextChanged.connect(lambda _t: self._refresh_agreement())
        box.comment.returnPressed.connect(self._reject_with_comment)
        box.comment.cancelled.connect(self._cancel_comment)

    def _review_project_opened(self) -> None:
        """A project was opened (or the annotator changed): the review starts over (the photo is shown next)."""
        self.review = None
        self.end_review()
        box = self.review_box
        box.owner.blockSignals(True)
        box.owner.clear()
        box.owner.addItems(other_annotators(self.session.store, self.annotator))
        box.owner.blockSignals(False)
        self._refresh_agreement()

    # -- the queue ------------------------------------------------------------------------------------
    def start_review(self, owner: str | None = None) -> None:
        s = self.session
        if s is None:
            return
        if owner:
            self.review_box.owner.setCurrentText(owner)
        who = owner or self.review_box.owner.currentText()
        if not who:
            self.message.emit("info", "No other annotator has changed labels in this project yet.")
            return
        self.review = q = ReviewQueue(s.store, who, self.annotator)
        q.changed.connect(self._show_review)
        q.failed.connect(self._review_failed)
        self.canvas.editable = False  # the outline shown is the owner's: not the reviewer's to paint on
        self._show_review()
        self._refresh_agreement()
        self.setFocus()  # type: ignore[attr-defined]

    def end_review(self) -> None:
        was = self.review is not None
        self.review = None
        self.canvas.editable = True
        self.review_box.comment.hide()
        self.review_box.item.setText("")
        if was and self.session is not None:
            self._show_photo()  # type: ignore[attr-defined]  # the reviewer's own outline again

    def shown_outline(self) -> Outline | None:
        """The outline on the canvas: the reviewed owner's while reviewing, else the working annotator's."""
        s = self.session
        if self.review is not None:
            return s.store.outline(s.current.key, self.review.owner)  # type: ignore[no-any-return]
        return s.outline()  # type: ignore[no-any-return]

    def _show_review(self) -> None:
        q, s = self.review, self.session
        if q is None or s is None:
            return
        e = q.current
        if e is None:
            self.review_box.item.setText(f"Nothing of {html.escape(q.owner)}'s is waiting for your review.")
            return
        if s.current.key != e.key:
            s.go(next(i for i, p in enumerate(s.photos) if p.key == e.key))  # shows the photo and its outline
        else:
            self.canvas.set_outline(self.shown_outline())
        d = q.decision()
        state = ("pending" if d is None else ("✓ accepted" if d[0] else "✗ rejected") + (f": {d[1]}" if d[1] else ""))
        self.review_box.item.setText(
            f"{q.position + 1} / {len(q.entries)} · {q.remaining} to decide · {html.escape(e.key)} by "
            f"{html.escape(e.annotator)}<br><b>{html.escape(change_text(e))}</b><br>{html.escape(state)}")

    def _review_failed(self, reason: str) -> None:
        self.message.emit("error", f"review not saved: {reason}")

    def review_key(self, key: str) -> bool:
        """Handle ``key`` while reviewing; False when it is not a review key (the labelling keys get it)."""
        q, a = self.review, REVIEW_KEYS.get(key)
        if q is None or a is None:
            return False
        if a.action == "review_accept":
            if q.accept():
                self._agreement_soon()
        elif a.action == "review_reject":
            if q.current is not None and q.decision() is None:
                self.review_box.comment.show()
                self.review_box.comment.setFocus()
        elif a.action == "review_next":
            q.next()
        elif a.action == "review_prev":
            q.prev()
        elif a.action == "review_end":
            self.end_review()
        return True

    def _reject_with_comment(self) -> None:
        box = self.review_box
        comment = box.comment.text()
        box.comment.clear()
        box.comment.hide()
        self.setFocus()  # type: ignore[attr-defined]
        if self.review is not None and self.review.reject(comment):
            self._agreement_soon()

    def _cancel_comment(self) -> None:
        self.review_box.comment.clear()
        self.review_box.comment.hide()
        self.setFocus()  # type: ignore[attr-defined]

    # -- agreement ------------------------------------------------------------------------------------
    def _agreement_soon(self) -> None:
        """After a decision: at once without a job runner, else once the reviewer pauses."""
        if self.jobs is None:
            self._refresh_agreement()
        else:
            self.agreement_timer.start()

    def _refresh_agreement(self) -> None:
        """Kappa and Dice of the chosen owner against the working annotator, off the UI thread (it reads every
        label and decodes every outline of both). One job at a time: decisions made while it runs ask for one
        more run after it (not one each), and a result older than the latest request is not shown."""
        s, other = self.session, self.review_box.owner.currentText()
        ticket = self._agreement_ticket.next()
        if s is None or not other:
            self.agreement = None
            self.review_box.agreement.setText("")
            return
        if self._agreement_running:
            self._agreement_again = True
            return
        store, me = s.store, self.annotator

        def ended() -> None:
            self._agreement_running = False
            if self._agreement_again:
                self._agreement_again = False
                self._refresh_agreement()

        def done(result: Agreement) -> None:
            if self.session is s and self._agreement_ticket.is_current(ticket):
                self.agreement = result
                self.review_box.agreement.setText(
                    f"<b>Agreement {html.escape(result.a)} vs {html.escape(result.b)}</b><br>"
                    + "<br>".join(html.escape(line) for line in result.lines()))
            ended()

        def failed(exc: Exception) -> None:
            if self.session is s and self._agreement_ticket.is_current(ticket):
                self.review_box.agreement.setText(html.escape(f"agreement not computed: {exc}"))
            ended()

        self._agreement_running = True
        if self.jobs is None:
            done(agreement(store, other, me))
        else:  # labels, not the model: a model loaded meanwhile does not make it stale
            self.jobs.run(lambda: agreement(store, other, me), Lane.EXPLAIN, on_result=done, on_error=failed,
                          stale_with_model=False)
