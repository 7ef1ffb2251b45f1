"""Clinical context per pack row, and the field dropping that trains a model to answer with any subset.

The context of a row is read from the pack's labels (body part, the six yes/no attributes, with their
masks) and its ``age`` metadata column. Training drops each known field with probability ``p`` and the
whole context with probability ``p_all``, so the model gives a sound differential with any subset of
fields, none included (engine.context documents the encoding and the fields never used).

``absence_protocol`` is the evaluation under which a field's absence carries no label information
(issue: ``grew``/``changed`` are unknown on a third of BCC/SCC photos and almost never otherwise): only
the rows whose used fields are all known are scored, and each field is then dropped at random,
independently of the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.context import ATTRIBUTE_FIELDS, ClinicalContext
from engine.taxonomy import Taxonomy


class LabelledRows(Protocol):
    """What a pack (``PackData``) and a manifest (``Manifest``) both hold: labels, masks, metadata."""

    taxonomy: Taxonomy
    labels: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    metadata: dict[str, list[str]]

    def __len__(self) -> int: ...

__all__ = ["ContextProtocol", "absence_pattern", "absence_protocol", "complete_rows", "drop_fields", "pack_contexts"]


def pack_contexts(data: LabelledRows) -> list[ClinicalContext]:
    """The known context of every row of a pack or manifest (unknown labels -> ``None`` fields)."""
    tax = data.taxonomy
    sites = [c.code for c in tax.head("body_part").classes] if "body_part" in data.labels else []
    attr_names = [c.code for c in tax.head("attributes").classes] if "attributes" in data.labels else []
    ages = data.metadata.get("age", [""] * len(data))
    out: list[ClinicalContext] = []
    for i in range(len(data)):
        kw: dict[str, object] = {}
        try:
            kw["age"] = float(ages[i]) if ages[i] not in ("", None) else None
        except ValueError:
            kw["age"] = None
        if sites:
            lab, known = int(data.labels["body_part"][i]), bool(data.masks["body_part"][i])
            kw["body_part"] = sites[lab] if known and lab >= 0 else None
        for j, name in enumerate(attr_names):
            if name in ATTRIBUTE_FIELDS:
                known = bool(data.masks["attributes"][i][j])
                kw[name] = bool(data.labels["attributes"][i][j]) if known else None
        out.append(ClinicalContext(**kw))  # type: ignore[arg-type]
    return out


def drop_fields(ctx: ClinicalContext, rng: np.random.Generator, p: float, p_all: float,
                fields: Sequence[str]) -> ClinicalContext | None:
    if rng.random() < p_all:
        return None
    drop = [f for f in fields if rng.random() < p]
    return ctx.without(drop) if drop else ctx


def complete_rows(contexts: Sequence[ClinicalContext], fields: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows whose every used field is known."""
    return np.array([all(getattr(c, f) is not None for f in fields) for c in contexts], dtype=bool)


@dataclass(frozen=True)
class ContextProtocol:
    """Which rows are scored and which context each gets (``None`` = photo only)."""

    rows: np.ndarray
    contexts: list[ClinicalContext | None]


def absence_protocol(contexts: Sequence[ClinicalContext], rows: np.ndarray, fields: Sequence[str], *,
                     p_drop: float = 0.5, seed: int = 0) -> ContextProtocol:
    """Rows of ``rows`` whose used fields are all known, each field then dropped with ``p_drop`` (seeded)."""
    rows = np.asarray(rows)
    keep = rows[complete_rows([contexts[int(i)] for i in rows], fields)]
    rng = np.random.default_rng([seed, 424242])
    out: list[ClinicalContext | None] = []
    for i in keep:
        drop = [f for f in fields if rng.random() < p_drop]
        out.append(contexts[int(i)].without(drop))
    return ContextProtocol(keep, out)


def absence_pattern(contexts: Sequence[ClinicalContext | None], fields: Sequence[str]) -> np.ndarray:
    """(N, F) bool: which used fields are absent; what a model that reads only missingness would see."""
    return np.array([[c is None or getattr(c, f) is None for f in fields] for c in contexts], dtype=bool).reshape(
        len(contexts), len(fields))
