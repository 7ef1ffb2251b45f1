"""Mapping another dataset's diagnoses onto the model's classes (e.g. Derm7pt -> PAD-UFES-20).

A mapping file is a two-column CSV (``source,target``) or a YAML mapping ``their class: our code``;
the target ``exclude`` keeps a class out of the metrics on purpose. A label that is neither one of
our codes nor in the file is *unmapped*. Both kinds are counted and stay visible in the gallery
(status ``excluded`` / ``unmapped``): a researcher must see what was left out, never lose it silently.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dermviewer.state.research.errors import MappingError

__all__ = ["EXCLUDE", "LabelStatus", "MappingReport", "TaxonomyMapping", "load_mapping"]

EXCLUDE = "exclude"


class LabelStatus:
    OK = "ok"
    EXCLUDED = "excluded"
    UNMAPPED = "unmapped"
    MISSING = "missing"  # an empty label cell


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


@dataclass(frozen=True)
class MappingReport:
    """What the mapping did to a dataset's labels: counts per status and per unmapped source class."""

    total: int
    mapped: int
    excluded: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    @property
    def n_excluded(self) -> int:
        return sum(self.excluded.values())

    @property
    def n_unmapped(self) -> int:
        return sum(self.unmapped.values())

    def summary(self) -> str:
        parts = [f"{self.mapped} of {self.total} photos scored"]
        if self.excluded:
            parts.append(f"{self.n_excluded} excluded ({_counts(self.excluded)})")
        if self.unmapped:
            parts.append(f"{self.n_unmapped} unmapped ({_counts(self.unmapped)})")
        if self.missing:
            parts.append(f"{self.missing} without a label")
        return "; ".join(parts)


@dataclass(frozen=True)
class TaxonomyMapping:
    """``their class -> our code | "exclude"``; codes already ours map to themselves."""

    table: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    def check(self, codes: Sequence[str]) -> None:
        bad = sorted({t for t in self.table.values() if t != EXCLUDE and t not in codes})
        if bad:
            raise MappingError(f"maps onto {bad}, which the model does not have (its classes: {list(codes)})",
                               self.source)

    def apply(self, labels: Sequence[str], codes: Sequence[str]) -> tuple[list[str], list[str], MappingReport]:
        """Map raw labels -> (our code or "", status per label, report)."""
        self.check(codes)
        known = set(codes)
        out, status = [], []
        excluded: Counter[str] = Counter()
        unmapped: Counter[str] = Counter()
        missing = 0
        for raw in labels:
            value = raw.strip()
            target = self.table.get(value, value if value in known else None)
            if not value:
                out.append("")
                status.append(LabelStatus.MISSING)
                missing += 1
            elif target == EXCLUDE:
                out.append("")
                status.append(LabelStatus.EXCLUDED)
                excluded[value] += 1
            elif target is None:
                out.append("")
                status.append(LabelStatus.UNMAPPED)
                unmapped[value] += 1
            else:
                out.append(target)
                status.append(LabelStatus.OK)
        report = MappingReport(len(out), status.count(LabelStatus.OK), dict(excluded), dict(unmapped), missing)
        return out, status, report


def load_mapping(path: str | Path) -> TaxonomyMapping:
    """Read a CSV (``source,target`` header optional) or YAML mapping file."""
    source = Path(path)
    if not source.is_file():
        raise MappingError("mapping file not found", source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read: {exc}", source) from exc
    table: dict[str, str] = {}
    if source.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MappingError(f"invalid YAML: {exc}", source) from exc
        if not isinstance(data, dict):
            raise MappingError("a YAML mapping file must be a mapping 'their class: our code'", source)
        table = {str(k).strip(): str(v).strip() for k, v in data.items()}
    else:
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["source", "target"]:
            rows = rows[1:]
        for n, row in enumerate(rows, 1):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise MappingError(f"row {n}: expected 'their class,our code or exclude', got {row}", source)
            table[row[0].strip()] = row[1].strip()
    if not table:
        raise MappingError("the mapping file maps nothing", source)
    return TaxonomyMapping({k: (EXCLUDE if v.lower() == EXCLUDE else v) for k, v in table.items()}, source)
