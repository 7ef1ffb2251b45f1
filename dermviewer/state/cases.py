"""The list of photos being reviewed: what the user opened, what each one's state is, which is current."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from dermviewer.state.events import Signal
from engine.errors import DermViewerError
from engine.imageio import SUPPORTED_SUFFIXES
from engine.prediction import Prediction

__all__ = ["Case", "CaseList", "CaseStatus", "expand_sources"]


class CaseStatus(Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Photos named directly (any suffix: the loader decides) plus supported photos inside folders.

    Folders are read one level deep, sorted by name, so a clinic's export folder opens in order.
    """
    out: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            out.extend(sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in SUPPORTED_SUFFIXES))
        else:
            out.append(p)
    return out


@dataclass
class Case:
    path: Path
    status: CaseStatus = CaseStatus.PENDING
    prediction: Prediction | None = None
    error: str | None = None
    thumbnail: Any = None  # small HxWx3 uint8 array
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def reset(self) -> None:
        """Forget the result (another model is in use); the thumbnail and metadata stay valid."""
        self.status, self.error, self.prediction = CaseStatus.PENDING, None, None

    def set_result(self, prediction: Prediction | None, error: DermViewerError | str | None = None) -> None:
        if error is not None:
            self.status, self.error, self.prediction = CaseStatus.FAILED, str(error), None
        else:
            self.status, self.error, self.prediction = CaseStatus.DONE, None, prediction


class CaseList:
    """Ordered cases with a current index. ``added(first, cases)``, ``changed(index)``, ``current_changed(index)``."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self.current_index: int = -1
        self.added = Signal()
        self.changed = Signal()
        self.current_changed = Signal()
        self.cleared = Signal()

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> Case:
        return self.cases[i]

    @property
    def current(self) -> Case | None:
        return self.cases[self.current_index] if 0 <= self.current_index < len(self.cases) else None

    def index_of(self, path: Path) -> int:
        rp = path.resolve()
        for i, c in enumerate(self.cases):
            if c.path.resolve() == rp:
                return i
        return -1

    def add(self, paths: Iterable[Path]) -> list[Case]:
        """Append photos not already in the list; returns the new cases (duplicates are skipped)."""
        new: list[Case] = []
        seen = {c.path.resolve() for c in self.cases}
        for p in paths:
            rp = Path(p).resolve()
            if rp not in seen:
                seen.add(rp)
                new.append(Case(Path(p)))
        if new:
            first = len(self.cases)
            self.cases.extend(new)
            self.added.emit(first, new)
        return new

    def clear(self) -> None:
        self.cases.clear()
        self.current_index = -1
        self.cleared.emit()

    def reset_results(self) -> None:
        """Every case back to pending, each row told at once (a model switch makes all results stale)."""
        for i, c in enumerate(self.cases):
            c.reset()
            self.changed.emit(i)

    def notify_changed(self, case: Case) -> None:
        if case in self.cases:
            self.changed.emit(self.cases.index(case))

    def set_current(self, index: int) -> None:
        if not self.cases:
            return
        index = max(0, min(index, len(self.cases) - 1))
        if index != self.current_index:
            self.current_index = index
            self.current_changed.emit(index)

    def next(self) -> None:
        self.set_current(self.current_index + 1)

    def previous(self) -> None:
        self.set_current(self.current_index - 1)
