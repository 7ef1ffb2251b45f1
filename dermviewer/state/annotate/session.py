"""The annotating session the Qt panel draws: which photo is shown, what is selected, what each key does, the
model's suggestion, and the saved/saving state. Qt-free, so the keyboard flow is tested without a display.

Keys are plain strings in Qt's portable format (``"3"``, ``"Alt+2"``, ``"Ctrl+Z"``); the default map is built
from the project's label schema (digits = disease classes, letters = body parts, Alt+digit = attribute cycles
yes -> no -> unknown) and any key can be re-bound in ``annotate_keys.json`` in the config folder.
Every change is saved at once (one transaction) through the store; nothing waits for a Save button.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dermviewer.state.annotate.errors import ProjectWriteError
from dermviewer.state.annotate.outline import Outline
from dermviewer.state.annotate.ranking import OofPredictions
from dermviewer.state.annotate.store import OUTLINE, UNUSABLE, Edit, Photo, SqlAnnotationStore
from dermviewer.state.events import Signal
from engine.prediction import Prediction

__all__ = ["UNUSABLE_REASONS", "AnnotateSession", "KeyAction", "default_keymap", "load_keymap"]

UNUSABLE_REASONS = ("no visible lesion", "wrong site", "heavy artefact", "ink marks")
_RESERVED = set("jk?")  # next / previous / help keep their letters


@dataclass(frozen=True)
class KeyAction:
    action: str  # set | cycle | next | prev | accept | unusable | usable | undo | redo | help | overlay | review
    field: str = ""
    value: str = ""
    text: str = ""  # what the help overlay says


def default_keymap(session_fields: list[tuple[str, list[tuple[str, str]]]]) -> dict[str, KeyAction]:
    keys: dict[str, KeyAction] = {
        "Right": KeyAction("next", text="next photo"), "J": KeyAction("next", text="next photo"),
        "Left": KeyAction("prev", text="previous photo"), "K": KeyAction("prev", text="previous photo"),
        "Return": KeyAction("accept", text="accept the model's suggestion (disease, body part)"),
        "Ctrl+Z": KeyAction("undo", text="undo"), "Ctrl+Shift+Z": KeyAction("redo", text="redo"),
        "Ctrl+Y": KeyAction("redo", text="redo"), "?": KeyAction("help", text="show / hide this help"),
        "F1": KeyAction("help", text="show / hide this help"),
        "Ctrl+0": KeyAction("usable", text="usable again (clear the unusable mark)"),
        "Ctrl+L": KeyAction("overlay", text="show / hide the model's attention (LSM map, selected tokens)"),
        "Ctrl+R": KeyAction("review", text="review another annotator's changes (A accept, R reject, N next)"),
        "Alt+O": KeyAction("accept_outline", text="accept the lesion finder's outline (then edit it)"),
    }
    for i, reason in enumerate(UNUSABLE_REASONS, 1):
        keys[f"Ctrl+{i}"] = KeyAction("unusable", UNUSABLE, reason, f"mark unusable: {reason}")
    used = set(_RESERVED)
    attr = 0
    for field, choices in session_fields:
        if field == "disease":
            for i, (code, name) in enumerate(choices[:9], 1):
                keys[str(i)] = KeyAction("set", field, code, f"disease: {code} ({name})")
        elif field == "body_part":
            for code, name in choices:
                letter = next((c for c in code.lower() + "abcdefghilmnopqrstuvwxyz" if c.isalpha() and c not in used),
                              None)
                if letter is not None:
                    used.add(letter)
                    keys[letter.upper()] = KeyAction("set", field, code, f"body part: {name}")
        elif field.startswith("attr:") and attr < 9:
            attr += 1
            keys[f"Alt+{attr}"] = KeyAction("cycle", field, "", f"attribute {field[5:]}: yes / no / unknown")
    return keys


def load_keymap(defaults: dict[str, KeyAction], path: Path | None) -> tuple[dict[str, KeyAction], list[str]]:
    """Defaults with the user's re-bindings (``{"new key": "old key"}``) applied; problems are returned."""
    if path is None or not path.is_file():
        return dict(defaults), []
    try:
        overrides = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(overrides, dict):
            raise ValueError("expected a JSON object of new key -> default key")
    except (OSError, ValueError) as exc:
        return dict(defaults), [f"{path}: shortcuts ignored ({exc})"]
    keys, problems = dict(defaults), []
    for new, old in overrides.items():
        if old not in defaults:
            problems.append(f"{path}: no default key {old!r} to re-bind to {new!r}")
            continue
        keys.pop(old, None)
        keys[str(new)] = defaults[old]
    return keys, problems


class AnnotateSession:
    """One annotator on one project. ``changed`` fires after every edit, undo, redo or move (photo key)."""

    def __init__(self, store: SqlAnnotationStore, annotator: str, oof: OofPredictions | None = None,
                 keymap_path: Path | None = None) -> None:
        self.store, self.annotator, self.oof = store, annotator, oof
        self.photos: list[Photo] = store.photos()
        self.fields = store.fields()
        self.index = 0
        self.selection: list[int] = []  # extra photos a label applies to (bulk relabel); empty = current only
        self.values = store.values(annotator)
        self.live: dict[str, dict[str, tuple[str, float]]] = {}  # key -> head -> (code, probability)
        self.found: dict[str, Outline | None] = {}  # key -> the lesion finder's outline (None: it found none)
        defaults = default_keymap([(f.field, f.choices) for f in self.fields])
        self.keymap, self.problems = load_keymap(defaults, keymap_path)
        self.save_state, self.save_detail, self.last_saved_at = "saved", "", 0.0
        self.changed = Signal()  # (keys, fields) that changed
        self.moved = Signal()  # (index)
        self.saving = Signal()  # (state, detail): "saving" | "saved" | "error"
        self.stepped = Signal()  # (label): a new undo step was saved -> the Qt undo stack pushes it
        self.help_toggled = Signal()

    # -- what is shown ------------------------------------------------------------------------------------
    @property
    def current(self) -> Photo:
        return self.photos[self.index]

    def value(self, field: str, index: int | None = None) -> str:
        return self.values[self.photos[self.index if index is None else index].key].get(field, "")

    def outline(self) -> Outline | None:
        return self.store.outline(self.current.key, self.annotator)

    def suggestion(self, head: str) -> tuple[str, float] | None:
        """The model's label for the current photo: its out-of-fold prediction (made by a fold model that never
        trained on the photo), else a live prediction of the loaded model (:meth:`set_live`), else None."""
        found = None if self.oof is None else self.oof.suggestion(self.current.key, head)
        return found if found is not None else self.live.get(self.current.key, {}).get(head)

    def needs_live(self) -> bool:
        """True when the current photo has no out-of-fold prediction and no live one yet."""
        key = self.current.key
        return key not in self.live and (self.oof is None or self.oof.suggestion(key, "disease") is None)

    def needs_found_outline(self) -> bool:
        """True when the current photo has no outline of this annotator and the lesion finder has not run on it."""
        return self.current.key not in self.found and self.outline() is None

    def set_found_outline(self, key: str, mask: npt.NDArray[np.bool_] | None) -> None:
        """Keep the lesion finder's outline of a photo (every lesion it found, in the photo's frame)."""
        self.found[key] = None if mask is None or not mask.any() else Outline.from_mask(mask)
        if key == self.current.key:
            self.changed.emit({key}, {OUTLINE})

    def found_outline(self) -> Outline | None:
        return self.found.get(self.current.key)

    def accept_found_outline(self) -> bool:
        """The lesion finder's outline becomes this photo's outline (saved and audited like a drawn one; the
        annotator edits it from there). False when there is none."""
        found = self.found_outline()
        return found is not None and self.set_outline(found)

    def clear_live(self) -> None:
        """Forget the live predictions: they came from a model that is no longer loaded."""
        self.live.clear()

    def set_live(self, key: str, prediction: Prediction) -> None:
        """Keep the loaded model's prediction of a photo (run by the Qt layer on the interactive lane)."""
        best_part = max(prediction.body_parts, key=lambda b: b.probability, default=None)
        self.live[key] = {"disease": (prediction.top.code, float(prediction.top.probability))}
        if best_part is not None:
            self.live[key]["body_part"] = (best_part.code, float(best_part.probability))
        if key == self.current.key:
            self.changed.emit({key}, set())

    def help_lines(self) -> list[tuple[str, str]]:
        return [(k, a.text) for k, a in self.keymap.items()]

    # -- moving -------------------------------------------------------------------------------------------
    def go(self, index: int) -> None:
        self.index = max(0, min(len(self.photos) - 1, index))
        self.moved.emit(self.index)

    def select(self, indices: list[int]) -> None:
        self.selection = sorted(set(indices))

    # -- editing ------------------------------------------------------------------------------------------
    def targets(self) -> list[int]:
        return self.selection if len(self.selection) > 1 else [self.index]

    def _save(self, edits: list[Edit], label: str) -> bool:
        self.save_state = "saving"
        self.saving.emit("saving", label)
        try:
            step = self.store.apply(edits, self.annotator, label=label)
        except ProjectWriteError as exc:
            self.save_state, self.save_detail = "error", exc.reason
            self.saving.emit("error", exc.reason)
            return False
        self._refresh(edits)
        if step is not None:
            self.stepped.emit(label)
        return True

    def _refresh(self, edits: list[Edit]) -> None:
        """The committed values, kept here too (the store's effective value is what was just set), so a
        keypress costs one transaction and no re-read."""
        for e in edits:
            if e.field != OUTLINE:
                self.values.setdefault(e.key, {})[e.field] = e.value
        self.save_state, self.last_saved_at = "saved", time.time()
        self.saving.emit("saved", "")
        self.changed.emit({e.key for e in edits}, {e.field for e in edits})

    def set_value(self, field: str, value: str) -> bool:
        """Set a label on the current photo, or on every selected photo (one undo step)."""
        targets = self.targets()
        edits = [Edit(self.photos[i].key, field, value) for i in targets]
        what = f"{field} = {value or 'none'}" + (f" on {len(targets)} photos" if len(targets) > 1 else "")
        return self._save(edits, what)

    def cycle(self, field: str) -> bool:
        order = ["1", "0", ""]
        nxt = order[(order.index(self.value(field)) + 1) % 3] if self.value(field) in order else "1"
        return self.set_value(field, nxt)

    def accept_suggestion(self) -> bool:
        edits = []
        for head in ("disease", "body_part"):
            s = self.suggestion(head)
            if s is not None and head in {f.field for f in self.fields}:
                edits += [Edit(self.photos[i].key, head, s[0]) for i in self.targets()]
        return bool(edits) and self._save(edits, "accept the model's suggestion")

    def set_outline(self, outline: Outline | None) -> bool:
        return self._save([Edit(self.current.key, OUTLINE, "" if outline is None else outline.to_json())],
                          "outline")

    def undo(self) -> list[Edit]:
        return self._replay(self.store.undo)

    def redo(self) -> list[Edit]:
        return self._replay(self.store.redo)

    def _replay(self, fn: object) -> list[Edit]:
        self.saving.emit("saving", "")
        try:
            edits = fn(self.annotator)  # type: ignore[operator]
        except ProjectWriteError as exc:
            self.save_state, self.save_detail = "error", exc.reason
            self.saving.emit("error", exc.reason)
            return []
        self._refresh(edits)
        return edits

    def handle_key(self, key: str) -> bool:
        """Run what ``key`` is bound to; False if it is bound to nothing. Undo/redo (the Qt undo stack drives
        them), the model overlay and starting a review are the caller's: True for them without acting."""
        a = self.keymap.get(key)
        if a is None:
            return False
        if a.action == "set":
            self.set_value(a.field, a.value)
        elif a.action == "cycle":
            self.cycle(a.field)
        elif a.action == "next":
            self.go(self.index + 1)
        elif a.action == "prev":
            self.go(self.index - 1)
        elif a.action == "accept":
            self.accept_suggestion()
        elif a.action == "accept_outline":
            self.accept_found_outline()
        elif a.action == "unusable":
            self.set_value(UNUSABLE, a.value)
        elif a.action == "usable":
            self.set_value(UNUSABLE, "")
        elif a.action == "help":
            self.help_toggled.emit()
        return True
