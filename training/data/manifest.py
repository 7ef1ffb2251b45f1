"""Manifest CSV -> label arrays and masks for every head of a taxonomy.

Unknown labels (empty cells) are *masked*, never read as 0: an attribute nobody recorded is not a
"no" (PAD-UFES-20 leaves ``grew``/``changed`` blank for ~15 % of rows). Rows whose disease code the
taxonomy does not know are skipped and reported; an unknown body-part code only masks that label.
Missing optional columns mask the whole head and are reported; a missing image, group or disease
column is a real failure (:class:`~training.data.spec.SpecError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.taxonomy import Taxonomy, load_taxonomy
from training.data.spec import DatasetSpec, SpecError

__all__ = ["Manifest", "Problem", "read_manifest"]

_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class Problem:
    """Something skipped or masked while reading; ``row`` is the 0-based CSV data row (-1: whole file)."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row + 2}" if self.row >= 0 else "manifest"
        return f"{where}, column {self.column!r}: {self.reason}"


@dataclass
class Manifest:
    """Rows kept after reading. Single-label heads: ``labels[h]`` int64 (N,), -1 where unknown;
    multi-label heads: float32 (N, C). ``masks[h]`` has the labels' shape, 1 = known."""

    spec: DatasetSpec
    taxonomy: Taxonomy
    paths: list[Path]
    ids: list[str]
    groups: list[str]
    labels: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    eval_exclude: np.ndarray
    metadata: dict[str, list[str]]
    rows: np.ndarray  # original CSV row of each kept item
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> Manifest:
        idx = np.flatnonzero(keep) if keep.dtype == bool else np.asarray(keep)
        return Manifest(
            spec=self.spec,
            taxonomy=self.taxonomy,
            paths=[self.paths[i] for i in idx],
            ids=[self.ids[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            labels={k: v[idx] for k, v in self.labels.items()},
            masks={k: v[idx] for k, v in self.masks.items()},
            eval_exclude=self.eval_exclude[idx],
            metadata={k: [v[i] for i in idx] for k, v in self.metadata.items()},
            rows=self.rows[idx],
            problems=list(self.problems),
        )


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _binary(text: str) -> float | None:
    low = text.lower()
    if low in _TRUE:
        return 1.0
    if low in _FALSE:
        return 0.0
    return None


def read_manifest(spec: DatasetSpec, taxonomy: Taxonomy | None = None) -> Manifest:
    """Read the spec's manifest, mapping every head through the taxonomy (see the module docstring)."""
    tax = taxonomy or load_taxonomy(spec.taxonomy)
    if not spec.manifest.is_file():
        raise SpecError("manifest CSV not found", spec.manifest)
    try:
        df = pd.read_csv(spec.manifest, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SpecError(f"cannot read manifest CSV: {exc}", spec.manifest) from exc
    problems: list[Problem] = []
    fatal = [c for c in (spec.image_column, spec.group_column, *spec.heads["disease"].all_columns())
             if c not in df.columns]
    if fatal:
        raise SpecError(f"manifest lacks required column(s) {fatal}; it has {list(df.columns)}", spec.manifest)
    unknown_heads = set(spec.heads) - set(tax.heads)
    if unknown_heads:
        raise SpecError(f"spec names heads {sorted(unknown_heads)} that taxonomy {tax.name!r} lacks", spec.source)
    n = len(df)
    keep = np.ones(n, dtype=bool)
    labels: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for head, cols in spec.heads.items():
        hs = tax.head(head)
        codes = hs.codes
        index = {c: i for i, c in enumerate(codes)}
        index_lower = {c.lower(): i for i, c in enumerate(codes)}
        if hs.multi_label:
            lab = np.zeros((n, len(codes)), dtype=np.float32)
            msk = np.zeros((n, len(codes)), dtype=np.uint8)
            colmap = cols.columns or {}
            if cols.column:
                raise SpecError(f"head {head!r} is multi-label: give 'columns' (one per class)", spec.source)
            unknown_codes = set(colmap) - set(codes)
            if unknown_codes:
                raise SpecError(f"head {head!r}: codes {sorted(unknown_codes)} not in the taxonomy", spec.source)
            for code, col in colmap.items():
                j = index[code]
                if col not in df.columns:
                    problems.append(Problem(-1, col, f"column missing: head {head!r} class {code!r} is masked"))
                    continue
                for r, raw in enumerate(df[col].tolist()):
                    text = _cell(raw)
                    if not text:
                        continue
                    val = _binary(text)
                    if val is None:
                        problems.append(Problem(r, col, f"value {text!r} is not 1/0/empty; masked"))
                        continue
                    lab[r, j], msk[r, j] = val, 1
        else:
            lab = np.full(n, -1, dtype=np.int64)
            msk = np.zeros(n, dtype=np.uint8)
            col = cols.column
            if col is None:
                raise SpecError(f"head {head!r} is single-label: give 'column'", spec.source)
            if col not in df.columns:
                problems.append(Problem(-1, col, f"column missing: head {head!r} is masked for every row"))
            else:
                for r, raw in enumerate(df[col].tolist()):
                    text = cols.aliases.get(_cell(raw), _cell(raw))
                    if not text:
                        if head == "disease":
                            keep[r] = False
                            problems.append(Problem(r, col, "empty disease label; row skipped"))
                        continue
                    j = index.get(text, index_lower.get(text.lower()))
                    if j is None:
                        reason = f"unknown code {text!r} (taxonomy {tax.name!r} has {codes})"
                        if head == "disease":
                            keep[r] = False
                            reason += "; row skipped"
                        else:
                            reason += "; label masked"
                        problems.append(Problem(r, col, reason))
                        continue
                    lab[r], msk[r] = j, 1
        labels[head], masks[head] = lab, msk
    for head in tax.heads:
        if head not in labels:  # taxonomy head the spec does not feed: all unknown
            hs = tax.head(head)
            shape = (n, len(hs)) if hs.multi_label else (n,)
            labels[head] = np.full(shape, 0 if hs.multi_label else -1, dtype=np.float32 if hs.multi_label else np.int64)
            masks[head] = np.zeros(shape, dtype=np.uint8)
            problems.append(Problem(-1, head, "spec gives no column for this head; masked"))
    images = [_cell(v) for v in df[spec.image_column].tolist()]
    groups = [_cell(v) for v in df[spec.group_column].tolist()]
    for r in range(n):
        if not images[r]:
            keep[r] = False
            problems.append(Problem(r, spec.image_column, "empty image path; row skipped"))
        if not groups[r]:
            groups[r] = f"__row{r}"
            problems.append(Problem(r, spec.group_column, "empty group; the row is its own group"))
    exclude = np.zeros(n, dtype=bool)
    for col in spec.exclude_from_eval:
        if col not in df.columns:
            problems.append(Problem(-1, col, "exclude_from_eval column missing; ignored"))
            continue
        exclude |= np.array([_binary(_cell(v)) == 1.0 for v in df[col].tolist()], dtype=bool)  # bool if no rows
    ids = [_cell(v) for v in df[spec.id_column].tolist()] if spec.id_column in df.columns else list(images)
    metadata = {}
    for col in spec.metadata:
        if col not in df.columns:
            problems.append(Problem(-1, col, "metadata column missing; ignored"))
            continue
        metadata[col] = [_cell(v) for v in df[col].tolist()]
    full = Manifest(
        spec=spec,
        taxonomy=tax,
        paths=[spec.root / p for p in images],
        ids=ids,
        groups=groups,
        labels=labels,
        masks=masks,
        eval_exclude=exclude,
        metadata=metadata,
        rows=np.arange(n),
        problems=problems,
    )
    return full.subset(keep)
