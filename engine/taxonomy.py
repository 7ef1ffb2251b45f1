"""Label taxonomies: the classes of each head, their names, malignancy and whether a head is multi-label.

One accessor, :func:`load_taxonomy`, reads the YAML files shipped in ``resources/taxonomies`` (or any
path); bundles embed the taxonomy as a plain dict so a model never depends on a file next to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import TaxonomyError

__all__ = ["HEAD_NAMES", "HeadSpec", "LabelClass", "Taxonomy", "load_taxonomy"]

HEAD_NAMES = ("disease", "body_part", "attributes")


@dataclass(frozen=True)
class LabelClass:
    code: str
    name: str
    malignant: bool = False
    group: str | None = None


@dataclass(frozen=True)
class HeadSpec:
    multi_label: bool
    classes: tuple[LabelClass, ...]

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Taxonomy:
    name: str
    heads: dict[str, HeadSpec] = field(default_factory=dict)
    version: int = 1

    def head(self, name: str) -> HeadSpec:
        try:
            return self.heads[name]
        except KeyError:
            raise TaxonomyError(f"taxonomy {self.name!r} has no head {name!r}") from None

    def num_classes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.heads.items()}

    def malignant_mask(self) -> list[bool]:
        return [c.malignant for c in self.head("disease").classes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "heads": {
                k: {"multi_label": h.multi_label, "classes": [asdict(c) for c in h.classes]}
                for k, h in self.heads.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> Taxonomy:
        try:
            heads = {}
            for hname, h in data["heads"].items():
                classes = tuple(
                    LabelClass(
                        code=str(c["code"]),
                        name=str(c.get("name", c["code"])),
                        malignant=bool(c.get("malignant", False)),
                        group=c.get("group"),
                    )
                    for c in h["classes"]
                )
                if not classes:
                    raise TaxonomyError(f"head {hname!r} has no classes", source)
                codes = [c.code for c in classes]
                if len(set(codes)) != len(codes):
                    raise TaxonomyError(f"head {hname!r} repeats a class code", source)
                heads[str(hname)] = HeadSpec(multi_label=bool(h.get("multi_label", False)), classes=classes)
            return cls(name=str(data["name"]), heads=heads, version=int(data.get("version", 1)))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # AttributeError: a list or str for a mapping
            raise TaxonomyError(f"malformed taxonomy ({exc!r})", source) from exc


def load_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """A shipped taxonomy by name (``"pad_ufes_20"``) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        from resources import resource_path

        path = resource_path("taxonomies", f"{name_or_path}.yaml")
    if not path.is_file():
        raise TaxonomyError("no such taxonomy file", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"cannot read taxonomy ({exc})", path) from exc
    if not isinstance(data, dict):
        raise TaxonomyError("taxonomy file is not a mapping", path)
    return Taxonomy.from_dict(data, path)
