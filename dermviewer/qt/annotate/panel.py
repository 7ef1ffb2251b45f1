"""The annotate mode's panel: photo list | outline canvas (with the model's attention, Ctrl+L) | labels with the
model's suggestion and the review of another annotator's changes (Ctrl+R), keyboard first.

The decisions live in :class:`~dermviewer.state.annotate.session.AnnotateSession` (and, while reviewing,
:class:`~dermviewer.state.annotate.reviewing.ReviewQueue`); this draws them and turns keys and strokes into
their calls. Each saved step is pushed on a ``QUndoStack`` whose commands call the
store's persistent undo/redo, so the stack (rebuilt from the project on opening) survives a restart.
"""

from __future__ import annotations

import getpass
import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.annotate.canvas import TOOLS, OutlineCanvas
from dermviewer.qt.annotate.commands import PanelCommands
from dermviewer.qt.annotate.overlay import PanelOverlay
from dermviewer.qt.annotate.review_box import PanelReview, ReviewBox
from dermviewer.state.annotate import OUTLINE, UNUSABLE, open_store
from dermviewer.state.annotate.model_overlay import ModelOverlay
from dermviewer.state.annotate.ranking import Suspect
from dermviewer.state.annotate.reviewing import REVIEW_KEYS
from dermviewer.state.annotate.session import AnnotateSession
from dermviewer.state.app_state import AppState
from dermviewer.state.executor import Lane
from dermviewer.state.settings import config_dir
from engine.errors import DermViewerError
from engine.imageio import load_image

__all__ = ["AnnotatePanel"]

SAVED_STYLE = {"saved": "color: #1e8449; font-weight: 600;", "saving": "color: #b9770e; font-weight: 600;",
               "error": "color: white; background: #922b21; font-weight: 600; padding: 2px 6px;"}


class _Step(QUndoCommand):
    """One saved step; undo/redo go to the project's undo log (never a copy held here)."""

    def __init__(self, panel: AnnotatePanel, label: str) -> None:
        super().__init__(label)
        self.panel, self.fresh = panel, True

    def redo(self) -> None:
        if self.fresh or self.panel.rebuilding:  # already saved when pushed / replaying the log on opening
            self.fresh = False
            return
        self.panel.session.redo()  # type: ignore[union-attr]

    def undo(self) -> None:
        if not self.panel.rebuilding:
            self.panel.session.undo()  # type: ignore[union-attr]


class AnnotatePanel(PanelReview, PanelOverlay, PanelCommands, QWidget):
    message = Signal(str, str)  # level, text -> the window's message bar

    def __init__(self, state: AppState | None = None, jobs: object | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("annotate_panel")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.installEventFilter(self)  # the panel's key bindings over the window's shortcuts: eventFilter
        self.state, self.jobs = state, jobs
        self.session: AnnotateSession | None = None
        self.undo_stack = QUndoStack(self)
        self.rebuilding = False
        self.items: dict[int, QListWidgetItem] = {}  # photo index -> its list row
        self.row_photo: list[int] = []  # list row -> photo index
        self.ranked: list[Suspect] | None = None
        self.annotator = getpass.getuser() or "annotator"
        self.model_overlay, self._overlay_job = ModelOverlay(), None
        self._build()
        self._connect_review()
        if state is not None:  # a model loaded after the project opened suggests for the photo shown
            state.model_changed.connect(self._model_changed)

    def _model_changed(self) -> None:
        s = self.session
        if s is None:
            return
        s.clear_live()
        self.forget_explanations()
        self._predict_live()
        self._show_values()

    # -- construction ---------------------------------------------------------------------------------
    def _button(self, text: str, slot: object, name: str) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(name)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        bar = QHBoxLayout()
        bar.addWidget(self._button("New from manifest…", self._new_dialog, "annotate_new"))
        bar.addWidget(self._button("Open project…", self._open_dialog, "annotate_open"))
        bar.addWidget(self._button("Export…", self._export_dialog, "annotate_export"))
        bar.addWidget(self._button("Rank suspects", self.rank, "annotate_rank"))
        self.who = QLineEdit(self.annotator)
        self.who.setObjectName("annotate_annotator")
        self.who.setMaximumWidth(140)
        self.who.setToolTip("Annotator (labels, audit and undo are per annotator)")
        self.who.editingFinished.connect(self._annotator_changed)
        bar.addWidget(QLabel("Annotator:"))
        bar.addWidget(self.who)
        bar.addSpacing(12)
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool in TOOLS:
            tb = QToolButton()
            tb.setText(tool.capitalize())
            tb.setCheckable(True)
            tb.setAutoExclusive(True)
            tb.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            tb.setObjectName(f"annotate_tool_{tool}")
            tb.clicked.connect(lambda _c=False, t=tool: self.set_tool(t))
            self.tool_buttons[tool] = tb
            bar.addWidget(tb)
        self.tool_buttons["brush"].setChecked(True)
        self.overlay_button = QToolButton()
        self.overlay_button.setText("Model overlay")
        self.overlay_button.setObjectName("annotate_overlay")
        self.overlay_button.setToolTip("The model's attention (LSM map) and selected tokens on the photo (Ctrl+L)")
        self.overlay_button.setCheckable(True)
        self.overlay_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.overlay_button.clicked.connect(lambda _c=False: self.toggle_overlay())
        bar.addWidget(self.overlay_button)
        bar.addStretch(1)
        bar.addWidget(self._button("Shortcuts (?)", self.toggle_help, "annotate_help_button"))
        self.saved = QLabel("No project")
        self.saved.setObjectName("annotate_saved")
        bar.addWidget(self.saved)

        self.list = QListWidget()
        self.list.setObjectName("annotate_list")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.setUniformItemSizes(True)  # a row's new text must not re-measure 10,000 rows
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.setMinimumWidth(250)
        self.canvas = OutlineCanvas()
        self.canvas.outline_edited.connect(self._outline_edited)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        form_box = QWidget()
        self.form = QGridLayout(form_box)
        self.form.setAlignment(Qt.AlignmentFlag.AlignTop)
        side.setMinimumWidth(330)
        self.history = QLabel("", side)
        side_layout.addWidget(form_box)
        side_layout.addWidget(QLabel("<b>Changes to this photo</b>"))
        side_layout.addWidget(self.history)
        self.review_box = ReviewBox(side)
        side_layout.addWidget(self.review_box)
        side_layout.addStretch(1)
        self.history.setObjectName("annotate_history")
        self.history.setWordWrap(True)
        self.history.setStyleSheet("color: #555;")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(self.canvas)
        split.addWidget(side)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 700, 360])
        root = QVBoxLayout(self)
        root.addLayout(bar)
        root.addWidget(split, 1)
        self.help = QLabel(self)
        self.help.setObjectName("annotate_help")
        self.help.setStyleSheet("background: rgba(20,20,20,235); color: #eee; padding: 14px; font-family: monospace;")
        self.help.hide()
        self.value_labels: dict[str, QLabel] = {}

    # -- project ----------------------------------------------------------------------------------------
    def open_project(self, project: str | Path, annotator: str | None = None) -> None:
        if annotator:
            self.annotator = annotator
            self.who.setText(annotator)
        if self.session is not None:
            self.session.store.close()
        store = open_store(project)
        keys_file = config_dir() / "annotate_keys.json"
        self.session = s = AnnotateSession(store, self.annotator, self._oof(), keys_file)
        for problem in s.problems:
            self.message.emit("warning", problem)
        s.changed.connect(self._values_changed)
        s.moved.connect(lambda _i: self._show_photo())
        s.saving.connect(self._show_saving)
        s.stepped.connect(lambda label: self.undo_stack.push(_Step(self, label)))
        s.help_toggled.connect(self.toggle_help)
        self._rebuild_undo()
        self._build_form()
        self._fill_list()
        self._show_saving("saved", "")
        self.forget_explanations()  # of another project: none is drawn, a pending one is dropped
        self._review_project_opened()
        s.go(0)
        self.setFocus()

    def _rebuild_undo(self) -> None:
        """The project's undo log as the QUndoStack: every step pushed, the index where the log says."""
        assert self.session is not None
        labels, done = self.session.store.history(self.annotator)
        self.rebuilding = True
        try:
            self.undo_stack.clear()
            for label in labels:
                self.undo_stack.push(_Step(self, label))
            self.undo_stack.setIndex(done)
        finally:
            self.rebuilding = False

    def _annotator_changed(self) -> None:
        name = self.who.text().strip()
        if self.session is not None and name and name != self.annotator:
            self.open_project(self.session.store.location, name)

    def close_project(self) -> None:
        if self.session is not None:
            self.session.store.close()
            self.session = None

    def closeEvent(self, event: object) -> None:
        self.close_project()
        super().closeEvent(event)  # type: ignore[arg-type]

    # -- drawing ----------------------------------------------------------------------------------------
    def _row_text(self, i: int) -> str:
        s = self.session
        assert s is not None
        mark = " ⚠" if s.value(UNUSABLE, i) else ""
        return f"{s.photos[i].key} · {s.value('disease', i) or '—'} · {s.value('body_part', i) or '—'}{mark}"

    def _fill_list(self, order: list[int] | None = None) -> None:
        """All rows in one call, the photo of each row kept here (``row_photo``): not two calls per row. With
        PySide6 6.12 on Python 3.11 every call of a void Qt method takes a reference from None, and a
        10,000-photo project opened a few times (each annotator switch reopens it) drained it: the process
        aborted with "none_dealloc: deallocating None"."""
        assert self.session is not None
        self.list.blockSignals(True)
        self.list.clear()
        self.row_photo = list(order or range(len(self.session.photos)))
        self.list.addItems([self._row_text(i) for i in self.row_photo])
        self.items = {i: self.list.item(r) for r, i in enumerate(self.row_photo)}
        self.list.blockSignals(False)

    def _build_form(self) -> None:
        assert self.session is not None
        while self.form.count():
            w = self.form.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.value_labels.clear()
        self.suggest_labels: dict[str, QLabel] = {}
        self.form.addWidget(QLabel("<b>Field</b>"), 0, 0)
        self.form.addWidget(QLabel("<b>Label</b>"), 0, 1)
        self.form.addWidget(QLabel("<b>Model</b>"), 0, 2)
        rows = [(f.field, f.field.removeprefix("attr:")) for f in self.session.fields] + [(UNUSABLE, "unusable"),
                                                                                        (OUTLINE, "outline")]
        for r, (field, name) in enumerate(rows, 1):
            self.form.addWidget(QLabel(name), r, 0)
            v = QLabel("")
            v.setObjectName(f"annotate_value_{field}")
            self.value_labels[field] = v
            self.form.addWidget(v, r, 1)
            sug = QLabel("")
            sug.setObjectName(f"annotate_model_{field}")
            sug.setStyleSheet("color: #1f618d;")
            self.suggest_labels[field] = sug
            self.form.addWidget(sug, r, 2)

    def _show_photo(self) -> None:
        s = self.session
        if s is None:
            return
        try:
            rgb = load_image(s.current.path)
        except DermViewerError as exc:
            self.message.emit("error", str(exc))
            rgb = None
        self.canvas.set_photo(rgb, self.shown_outline())
        self._predict_live()
        self._find_outline(rgb)
        self.list.blockSignals(True)
        item = self.items.get(s.index)
        if item is not None:
            self.list.setCurrentItem(item)
            for j in s.selection if len(s.selection) > 1 else ():
                self.items[j].setSelected(True)
        self.list.blockSignals(False)
        self._show_values()

    def _find_outline(self, rgb: np.ndarray | None) -> None:
        """A photo without an outline gets the lesion finder's as the suggestion (Alt+O accepts it), found on
        the interactive lane; a result for a photo no longer shown is kept for when it is shown again."""
        s, lesions = self.session, getattr(self.state, "lesions", None)
        if s is None or rgb is None or self.jobs is None or lesions is None or not lesions.available:
            return
        if not s.needs_found_outline():
            return
        key = s.current.key

        def done(found: object) -> None:
            if self.session is s:
                s.set_found_outline(key, None if found is None else found.mask)  # type: ignore[attr-defined]

        self.jobs.run(lambda: lesions.find(rgb), Lane.INTERACTIVE, on_result=done,  # type: ignore[attr-defined]
                      on_error=lambda exc: self.message.emit("warning", f"no lesion outline suggested: {exc}"))

    def _predict_live(self) -> None:
        """A photo without an out-of-fold prediction gets the loaded model's, on the interactive lane; a result
        for a photo or project no longer shown is kept for when it is shown again, never drawn elsewhere."""
        if self.model_overlay.enabled:  # the explanation's job brings the prediction too: one inference, not two
            self.explain_current()
            return
        s, model = self.session, getattr(self.state, "model", None)
        if s is None or self.jobs is None or model is None or not getattr(model, "ready", False) or not s.needs_live():
            return
        predictor, key, path = model.predictor, s.current.key, s.current.path

        def done(prediction: object) -> None:
            if self.session is s:
                s.set_live(key, prediction)  # type: ignore[arg-type]

        self.jobs.run(lambda: predictor.predict(path), Lane.INTERACTIVE, on_result=done,  # type: ignore[attr-defined]
                      on_error=lambda exc: self.message.emit("warning", f"no live prediction: {exc}"))

    def _show_values(self) -> None:
        s = self.session
        assert s is not None
        for field, lab in self.value_labels.items():
            if field == OUTLINE:
                lab.setText("drawn" if s.outline() is not None else "—")
                continue
            v = s.value(field)
            lab.setText(v if v else ("usable" if field == UNUSABLE else "—"))
        if OUTLINE in self.suggest_labels:
            found = s.found_outline()
            known = s.current.key in s.found
            self.suggest_labels[OUTLINE].setText(
                "" if not known else "no lesion found" if found is None else "found (Alt+O accepts)")
        for head in ("disease", "body_part"):
            if head in self.suggest_labels:
                sug = s.suggestion(head)
                self.suggest_labels[head].setText("" if sug is None else f"{sug[0]} ({sug[1]:.0%})")
        entries = [e for e in s.store.audit(s.current.key) if e.owner == s.annotator][-4:]
        self.history.setText("<br>".join(f"{e.field}: {e.old or '—'} → {e.new or '—'} {e.reason}"[:80]
                                         for e in entries))

    def _values_changed(self, keys: set[str], fields: set[str]) -> None:
        s = self.session
        assert s is not None
        where = {p.key: i for i, p in enumerate(s.photos)} if len(keys) > 1 else {}
        for key in keys:
            i = where[key] if where else next(j for j in (s.index, *range(len(s.photos))) if s.photos[j].key == key)
            item = self.items.get(i)
            if item is not None:
                item.setText(self._row_text(i))
        if s.current.key in keys:
            if OUTLINE in fields:
                self.canvas.set_outline(self.shown_outline())
            self._show_values()

    def _show_saving(self, state: str, detail: str) -> None:
        text = {"saved": "✓ Saved", "saving": "Saving…", "error": f"✗ Not saved: {detail}"}[state]
        self.saved.setText(text)
        self.saved.setStyleSheet(SAVED_STYLE[state])
        if state == "saving":
            self.saved.repaint()
        elif state == "error":
            self.message.emit("error", detail)
            if self.session is not None:  # an unsaved stroke must not stay drawn as if it were saved
                self.canvas.set_outline(self.shown_outline())

    def toggle_help(self) -> None:
        if self.help.isVisible():
            self.help.hide()
            return
        lines = self.session.help_lines() if self.session else []
        if self.review is not None:
            lines = [(k, a.text) for k, a in REVIEW_KEYS.items()] + lines
        rows = "".join(f"<tr><td><b>{html.escape(k)}</b>&nbsp;&nbsp;</td><td>{html.escape(t)}</td></tr>"
                       for k, t in lines)
        example = html.escape('{"new key": "default key"}')
        self.help.setText(f"<b>Shortcuts</b> — re-bind in annotate_keys.json in the settings folder ({example})"
                          f"<table>{rows}</table>")
        self.help.adjustSize()
        self.help.move(max(0, (self.width() - self.help.width()) // 2), 40)
        self.help.show()
        self.help.raise_()

    # -- input ------------------------------------------------------------------------------------------
    def key_string(self, event: QKeyEvent) -> list[str]:
        seq = QKeySequence(event.keyCombination()).toString(QKeySequence.SequenceFormat.PortableText)
        return [seq] + ([event.text()] if event.text() and event.text().isprintable() else [])

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A key the panel binds wins over the window's shortcut for it ("1" is ACK here, not "actual size";
        "F" face, not "fit"; "N" next change while reviewing, not the review mode's next photo).

        A filter the panel installs on itself, not an ``event()`` override: an override also receives the
        panel's own DeferredDelete, so the widget is destroyed inside a Python frame still using it; gdb
        caught the test suite's segfault there (shiboken releasing a child layout's wrapper)."""
        if (watched is self and event.type() == QEvent.Type.ShortcutOverride and self.session is not None):
            keys = self.key_string(event)  # type: ignore[arg-type]
            if any(k in self.session.keymap or (self.review is not None and k in REVIEW_KEYS) for k in keys):
                event.accept()
                return True
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        s = self.session
        if s is None:
            super().keyPressEvent(event)
            return
        for key in self.key_string(event):
            if self.review_key(key):  # while reviewing, A / R / N / P / Esc are the review's
                event.accept()
                return
            action = s.keymap.get(key)
            if action is None:
                continue
            if action.action == "undo":
                self.undo_stack.undo()
            elif action.action == "redo":
                self.undo_stack.redo()
            elif action.action == "overlay":
                self.toggle_overlay()
            elif action.action == "review":
                self.start_review()
            else:
                s.handle_key(key)
            event.accept()
            return
        super().keyPressEvent(event)

    def _selection_changed(self) -> None:
        s = self.session
        if s is None:
            return
        chosen = [self.row_photo[self.list.row(it)] for it in self.list.selectedItems()]
        s.select(chosen)
        row = self.list.currentRow()
        if row >= 0 and self.row_photo[row] != s.index:
            s.go(self.row_photo[row])
        self.setFocus()

    def select_rows(self, indices: list[int]) -> None:
        """Multi-select photos (what shift/ctrl-clicking the list does) for a bulk relabel."""
        assert self.session is not None
        self.session.select(indices)
        self.session.go(indices[0])

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_buttons[tool].setChecked(True)

    def _outline_edited(self, outline: object) -> None:
        if self.session is not None and self.review is None:
            self.session.set_outline(outline)  # type: ignore[arg-type]
