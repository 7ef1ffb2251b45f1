"""The annotate panel with keys only: label ten photos, undo three, restart, redo, export, and the exported CSV
is exactly the expected one; bulk relabel, the model's suggestion, outline strokes, the help overlay, the
saved indicator (also when the disk refuses), and the mode switcher."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PySide6.QtCore import QPoint, Qt

import resources
from dermviewer.qt.annotate import AnnotatePanel
from dermviewer.state.annotate import OUTLINE, import_manifest, open_store
from dermviewer.state.annotate.ranking import read_oof
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA
from tests.dermviewer.state.test_annotate_store import small_manifest

TAX = load_taxonomy("pad_ufes_20")
CODES = TAX.head("disease").codes
ATTRS = ["itch", "grew", "hurt", "changed", "bleed", "elevation"]
DIGITS = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5, Qt.Key.Key_6]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"))
    store.close()
    return path


def make_panel(qtbot, project: Path) -> AnnotatePanel:
    panel = AnnotatePanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 800)
    panel.show()
    panel.open_project(project, "alice")
    return panel


def press(qtbot, panel: AnnotatePanel, key: str) -> None:
    """Press the key the panel's keymap binds (e.g. 'Alt+1', 'H', 'Ctrl+Shift+Z')."""
    *mods, name = key.split("+")
    flags = Qt.KeyboardModifier.NoModifier
    for m in mods:
        flags |= {"Ctrl": Qt.KeyboardModifier.ControlModifier, "Alt": Qt.KeyboardModifier.AltModifier,
                  "Shift": Qt.KeyboardModifier.ShiftModifier}[m]
    qt_key = getattr(Qt.Key, f"Key_{name}") if name != "?" else Qt.Key.Key_Question
    qtbot.keyClick(panel, qt_key, flags)


def key_for(panel: AnnotatePanel, field: str, value: str) -> str:
    assert panel.session is not None
    return next(k for k, a in panel.session.keymap.items() if a.field == field and a.value == value)


def test_label_ten_photos_by_keys_undo_restart_redo_export(qtbot, project: Path, tmp_path: Path) -> None:
    panel = make_panel(qtbot, project)
    with (DATA / "manifest.csv").open(newline="") as f:
        src = list(csv.DictReader(f))[:12]
    parts = ["hand", "back", "face", "foot", "neck"]
    edits: list[list[tuple[str, str]]] = []  # per keypress that saves: (field, value), photo index
    photo_of_step: list[int] = []
    for i in range(10):
        press(qtbot, panel, str(i % 6 + 1))
        edits.append([("diagnosis_code", CODES[i % 6])])
        photo_of_step.append(i)
        if i % 2 == 0:
            press(qtbot, panel, key_for(panel, "body_part", parts[i // 2]))
            edits.append([("body_part", parts[i // 2])])
            photo_of_step.append(i)
        if i % 3 == 0:
            press(qtbot, panel, "Alt+1")  # itch: yes -> no -> unknown
            before = src[i]["itch"]
            edits.append([("itch", _cycled(before))])
            photo_of_step.append(i)
        press(qtbot, panel, "Right")
    assert panel.session is not None and panel.session.index == 10
    assert "Saved" in panel.saved.text()
    steps_done = panel.undo_stack.index()
    for _ in range(3):
        press(qtbot, panel, "Ctrl+Z")
    assert panel.undo_stack.index() == steps_done - 3
    panel.close()  # restart: a new panel on the same file

    again = make_panel(qtbot, project)
    assert again.undo_stack.count() == steps_done and again.undo_stack.index() == steps_done - 3
    press(qtbot, again, "Ctrl+Shift+Z")  # redo one of the three
    assert again.undo_stack.index() == steps_done - 2
    out, _ = again.export(tmp_path / "export")

    applied = [e for n, e in enumerate(edits) if n < len(edits) - 2]
    expected = [dict(r) for r in src]
    for n, changes in enumerate(applied):
        row = expected[photo_of_step[n]]
        for col, value in changes:
            if col == "diagnosis_code" and value != src[photo_of_step[n]]["diagnosis_code"]:
                cls = next(c for c in TAX.head("disease").classes if c.code == value)
                row["diagnosis"], row["malignant"] = cls.name, "1" if cls.malignant else "0"
            if col == "body_part" and value != src[photo_of_step[n]]["body_part"]:
                row["body_part_coarse"] = next(c.group for c in TAX.head("body_part").classes if c.code == value)
            row[col] = value
    for r in expected:
        r["image"] = str((DATA / r["image"]).resolve())
        r["unusable"], r["unusable_reason"] = "0", ""
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    for r in got:  # the export writes paths relative to itself; compare the files they name (../shared may be a link)
        r["image"] = str((out.parent / r["image"]).resolve())
    assert got == expected
    again.close()


def _cycled(value: str) -> str:
    order = ["1", "0", ""]
    return order[(order.index(value) + 1) % 3] if value in order else "1"


def test_bulk_relabel_suggestion_unusable_and_help(qtbot, project: Path) -> None:
    panel = make_panel(qtbot, project)
    s = panel.session
    assert s is not None
    panel.select_rows([2, 3, 5])
    press(qtbot, panel, "3")
    assert [s.value("disease", i) for i in (2, 3, 5)] == [CODES[2]] * 3
    assert panel.undo_stack.count() == 1  # one step for the whole selection
    press(qtbot, panel, "Ctrl+Z")
    assert [s.value("disease", i) for i in (2, 3, 5)] == [s.store.value(s.photos[i].key, "disease", "import")
                                                            for i in (2, 3, 5)]
    panel.select_rows([0])
    press(qtbot, panel, "Return")  # accept the model's suggestion
    oof = read_oof(Path(resources.__file__).parent / "models" / "default.oof.h5")
    want = oof.suggestion(s.photos[0].key, "disease")
    assert want is not None and s.value("disease", 0) == want[0]
    assert panel.suggest_labels["disease"].text().startswith(want[0])
    press(qtbot, panel, "Ctrl+4")
    assert s.value("unusable", 0) == "ink marks" and "⚠" in panel.list.item(0).text()
    press(qtbot, panel, "?")
    assert panel.help.isVisible() and "Ctrl+Z" in panel.help.text() and "ink marks" in panel.help.text()
    press(qtbot, panel, "F1")
    assert not panel.help.isVisible()
    panel.close()


def test_outline_strokes_are_saved_with_their_box(qtbot, project: Path) -> None:
    panel = make_panel(qtbot, project)
    s = panel.session
    assert s is not None
    panel.set_tool("erase")
    canvas = panel.canvas
    t = canvas._target()
    scale = t.width() / canvas._size[1]

    def at(x: float, y: float) -> QPoint:
        return QPoint(int(t.x() + x * scale), int(t.y() + y * scale))

    before = s.outline()
    # erase everything, then paint one dab: the outline is that dab, its box derived from it
    canvas.set_outline(None)
    panel.set_tool("brush")
    canvas.brush_radius = 10
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=at(100, 100))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=at(100, 100))
    o = s.outline()
    assert o is not None and o != before
    x0, y0, x1, y1 = o.box
    assert abs((x0 + x1) / 2 - 100) <= 2 and abs((y0 + y1) / 2 - 100) <= 2 and 18 <= x1 - x0 <= 23
    assert s.store.audit(s.photos[0].key)[-1].field == OUTLINE
    panel.set_tool("polygon")
    for x, y in ((200, 200), (260, 200), (260, 260)):
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=at(x, y))
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton, pos=at(200, 260))  # close the polygon
    o2 = s.outline()
    assert o2 is not None and o2.box[2] >= 259 and o2.mask()[95:105, 95:105].all()  # the dab is kept
    press(qtbot, panel, "Ctrl+Z")
    press(qtbot, panel, "Ctrl+Z")
    after = s.outline()
    assert (after is None and before is None) or np.array_equal(after.mask(), before.mask())
    panel.close()


def test_a_refused_save_shows_in_the_indicator(qtbot, project: Path) -> None:
    panel = make_panel(qtbot, project)
    s = panel.session
    assert s is not None

    @sa.event.listens_for(s.store.engine, "connect")
    def _ro(dbapi_conn, _rec) -> None:
        dbapi_conn.execute("PRAGMA query_only=ON")

    s.store.engine.dispose()
    messages = []
    panel.message.connect(lambda level, text: messages.append((level, text)))
    old = s.value("disease")
    press(qtbot, panel, "5" if old != CODES[4] else "6")
    assert "Not saved" in panel.saved.text() and "read-only" in panel.saved.text()
    assert messages and messages[-1][0] == "error"
    assert s.value("disease") == old and panel.undo_stack.count() == 0
    stored = s.outline()
    panel.set_tool("box")  # a refused outline edit is taken back off the canvas too
    qtbot.mousePress(panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseRelease(panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(500, 400))
    assert "Not saved" in panel.saved.text()
    assert panel.canvas._box == (None if stored is None else stored.box)
    panel.close()


def test_mode_switcher_opens_the_annotate_panel(make_window, qtbot, tmp_path: Path) -> None:
    """The Annotate entry opens the panel on the window's job runner; a photo no cross-validation saw gets the
    loaded model's live prediction beside its labels."""
    from PySide6.QtGui import QAction

    from dermviewer.state.app_state import Mode

    win = make_window()
    action = win.findChild(QAction, "mode_annotate")
    assert action is not None and action.isEnabled() and "coming" not in action.text()
    action.trigger()
    panel = win.annotate_panel
    assert win.state.mode is Mode.ANNOTATE and win.mode_stack.currentWidget() is panel
    assert isinstance(panel, AnnotatePanel)
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=60_000)
    src = small_manifest(tmp_path / "src", n=1)
    text = src.read_text().splitlines()
    text[1] = text[1].replace("PAT_9_17_80.png", "NEW_PHOTO_1.png", 1)  # an id the out-of-fold file lacks
    src.write_text("\n".join(text) + "\n")
    panel.new_project(src, tmp_path / "new.dvproj")
    assert panel.session is not None and panel.session.photos[0].key == "NEW_PHOTO_1.png"
    qtbot.waitUntil(lambda: bool(panel.suggest_labels["disease"].text()), timeout=60_000)
    want = win.state.model.predictor.predict(panel.session.photos[0].path).top
    assert panel.suggest_labels["disease"].text().startswith(want.code)
    # keys the panel binds win over the window's shortcuts for them ("1" is actual size there, "F" fit)
    taken: list[str] = []
    for a in win.actions():
        for key in (seq.toString() for seq in a.shortcuts()):
            if key in ("1", "F"):
                a.triggered.connect(lambda _c=False, k=key: taken.append(k))
                taken.append(f"bound {key}")
    assert sorted(taken) == ["bound 1", "bound F"]
    press(qtbot, panel, "2")  # BCC first: the photo's imported ACK must not make "1" pass unpressed
    assert panel.session.value("disease") == "BCC"
    for key, field in (("1", "disease"), ("F", "body_part")):
        press(qtbot, panel, key)
        assert panel.session.value(field) == panel.session.keymap[key].value
    assert sorted(taken) == ["bound 1", "bound F"]  # neither window shortcut fired
    panel.close_project()
