"""The clinical context a dermatologist has beside the photo, and its encoding as a model input.

MetaBlock (Pacheco & Krohling, IEEE JBHI 2021) reports about +10 points of balanced accuracy on
PAD-UFES-20 when the patient's age, the body site and what the patient reports are fused with the
image. Only those fields are used here. Never encoded (PAD-UFES-20 data README, "Caveats"):
``biopsed``, the thirteen fields that are blank together on benign photos, and any "field is
missing" indicator. An absent field encodes as zeros, exactly as a field the user did not give, so
the encoder's output for "absent" is the same however the absence was spelt ("", "UNK", NaN, None).

Encoding (``ContextEncoding``), one block per field in ``fields`` order:
``age`` -> ``(age - 60) / 20`` (0 when absent); ``body_part`` -> one-hot over ``sites`` (all zeros
when absent); each yes/no field -> +1 yes, -1 no, 0 absent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from engine.errors import DermViewerError

__all__ = [
    "ATTRIBUTE_FIELDS",
    "CONTEXT_FIELDS",
    "ClinicalContext",
    "ContextEncoding",
    "ContextError",
    "parse_flag",
]

ATTRIBUTE_FIELDS = ("itch", "grew", "hurt", "changed", "bleed", "elevation")
CONTEXT_FIELDS = ("age", "body_part", *ATTRIBUTE_FIELDS)
_ABSENT = {"", "unk", "unknown", "nan", "none", "na", "n/a", "?", "-"}
_YES = {"1", "1.0", "yes", "y", "true", "t"}
_NO = {"0", "0.0", "no", "n", "false", "f"}
AGE_CENTRE, AGE_SCALE = 60.0, 20.0


class ContextError(DermViewerError):
    """A clinical-context value that cannot be read (names the field and the value)."""


def _is_absent(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _ABSENT


def parse_flag(value: Any, name: str = "field") -> bool | None:
    """yes/no/absent from any of the spellings manifests and users use."""
    if _is_absent(value):
        return None
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _YES:
        return True
    if s in _NO:
        return False
    raise ContextError(f"{name}: {value!r} is not yes/no (or empty for unknown)")


@dataclass(frozen=True)
class ClinicalContext:
    """What is known about the patient and the lesion; ``None`` = not known / not given."""

    age: float | None = None
    body_part: str | None = None
    itch: bool | None = None
    grew: bool | None = None
    hurt: bool | None = None
    changed: bool | None = None
    bleed: bool | None = None
    elevation: bool | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ClinicalContext:
        """From a manifest row or CLI flags; unknown keys are ignored, bad values raise ``ContextError``."""
        kw: dict[str, Any] = {}
        age = row.get("age")
        if not _is_absent(age):
            try:
                a = float(age)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise ContextError(f"age: {age!r} is not a number") from exc
            if not 0 <= a <= 120:
                raise ContextError(f"age: {a:g} is outside 0-120")
            kw["age"] = a
        site = row.get("body_part", row.get("site"))
        if not _is_absent(site):
            kw["body_part"] = str(site).strip().lower()
        for name in ATTRIBUTE_FIELDS:
            kw[name] = parse_flag(row.get(name), name)
        return cls(**kw)

    def known(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def without(self, names: Sequence[str]) -> ClinicalContext:
        return replace(self, **dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ContextEncoding:
    """How a :class:`ClinicalContext` becomes the model's context vector; travels in the bundle config."""

    fields: tuple[str, ...] = CONTEXT_FIELDS
    sites: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(CONTEXT_FIELDS)
        if unknown:
            raise ContextError(f"context fields {sorted(unknown)} are not allowed; choose from {CONTEXT_FIELDS}")
        if "body_part" in self.fields and not self.sites:
            raise ContextError("the body_part context field needs the list of sites")

    @property
    def dim(self) -> int:
        return sum(len(self.sites) if f == "body_part" else 1 for f in self.fields)

    def encode(self, ctx: ClinicalContext | None) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        if ctx is None:
            return v
        i = 0
        for name in self.fields:
            value = getattr(ctx, name)
            if name == "body_part":
                if value is not None:
                    if value not in self.sites:
                        raise ContextError(f"body_part: {value!r} is not one of {', '.join(self.sites)}")
                    v[i + self.sites.index(value)] = 1.0
                i += len(self.sites)
                continue
            if value is not None:
                v[i] = (float(value) - AGE_CENTRE) / AGE_SCALE if name == "age" else (1.0 if value else -1.0)
            i += 1
        return v

    def encode_many(self, contexts: Sequence[ClinicalContext | None]) -> np.ndarray:
        return np.stack([self.encode(c) for c in contexts]) if contexts else np.zeros((0, self.dim), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "sites": list(self.sites)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextEncoding:
        return cls(fields=tuple(data.get("fields", ())), sites=tuple(data.get("sites", ())))
