"""Dataset spec: how a manifest CSV maps onto the model's tasks (DermImitFormer heads D, B, A).

A spec is a small YAML file shipped in ``configs/data/``; the data itself stays outside the repo.
Relative ``root`` paths resolve against the spec file's folder, so a spec works from any cwd.

```yaml
name: pad_ufes_20
root: ../../../shared/data/pad_ufes_20
manifest: manifest.csv
taxonomy: pad_ufes_20
image_column: image
id_column: img_id
group_column: patient_id
heads:
  disease: {column: diagnosis_code}          # single-label: the cell holds a class code
  body_part: {column: body_part}
  attributes: {columns: [itch, grew, ...]}   # multi-label: one 1/0/empty column per class
exclude_from_eval: [label_conflict]          # rows with a truthy value are kept out of metrics
metadata: [malignant, lesion_id]             # copied into the pack as strings
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DermViewerError

__all__ = ["DatasetSpec", "HeadColumns", "SpecError", "load_spec"]


class SpecError(DermViewerError):
    """A dataset spec is malformed, or the manifest lacks a column the spec names."""


@dataclass(frozen=True)
class HeadColumns:
    """Columns feeding one head: ``column`` (one cell = one class code) or ``columns`` (code -> 0/1 column)."""

    column: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # raw cell value -> taxonomy code

    def all_columns(self) -> list[str]:
        return [self.column] if self.column else list(self.columns.values())


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    root: Path
    manifest: Path
    taxonomy: str
    image_column: str
    group_column: str
    heads: dict[str, HeadColumns]
    id_column: str | None = None
    exclude_from_eval: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    source: Path | None = None

    def required_columns(self) -> list[str]:
        cols = [self.image_column, self.group_column]
        if self.id_column:
            cols.append(self.id_column)
        for h in self.heads.values():
            cols.extend(h.all_columns())
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "manifest": str(self.manifest),
            "taxonomy": self.taxonomy,
            "image_column": self.image_column,
            "id_column": self.id_column,
            "group_column": self.group_column,
            "heads": {
                k: {"column": h.column, "columns": dict(h.columns), "aliases": dict(h.aliases)}
                for k, h in self.heads.items()
            },
            "exclude_from_eval": list(self.exclude_from_eval),
            "metadata": list(self.metadata),
        }


def _head(name: str, raw: Any, source: Path) -> HeadColumns:
    if isinstance(raw, str):
        return HeadColumns(column=raw)
    if not isinstance(raw, dict):
        raise SpecError(f"head {name!r}: expected a mapping with 'column' or 'columns'", source)
    column = raw.get("column")
    columns = raw.get("columns") or {}
    if isinstance(columns, list):
        columns = {str(c): str(c) for c in columns}
    if bool(column) == bool(columns):
        raise SpecError(f"head {name!r}: give exactly one of 'column' or 'columns'", source)
    aliases = {str(k): str(v) for k, v in (raw.get("aliases") or {}).items()}
    return HeadColumns(column=column, columns={str(k): str(v) for k, v in columns.items()}, aliases=aliases)


def load_spec(path: str | Path, root: str | Path | None = None) -> DatasetSpec:
    """Read a spec YAML; ``root`` overrides the data folder named in the file."""
    source = Path(path)
    if not source.is_file():
        raise SpecError("dataset spec not found", source)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", source) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source) from exc
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", source) from exc
    if not isinstance(data, dict):
        raise SpecError("spec must be a mapping", source)
    try:
        base = Path(root) if root is not None else (source.parent / str(data.get("root", "."))).resolve()
        heads_raw = data["heads"]
        if not isinstance(heads_raw, dict) or "disease" not in heads_raw:
            raise SpecError("'heads' must be a mapping that includes 'disease'", source)
        spec = DatasetSpec(
            name=str(data.get("name", source.stem)),
            root=base,
            manifest=base / str(data.get("manifest", "manifest.csv")),
            taxonomy=str(data["taxonomy"]),
            image_column=str(data.get("image_column", "image")),
            id_column=data.get("id_column"),
            group_column=str(data["group_column"]),
            heads={str(k): _head(str(k), v, source) for k, v in heads_raw.items()},
            exclude_from_eval=tuple(str(c) for c in data.get("exclude_from_eval", []) or []),
            metadata=tuple(str(c) for c in data.get("metadata", []) or []),
            source=source,
        )
    except KeyError as exc:
        raise SpecError(f"missing required key {exc.args[0]!r}", source) from exc
    except (AttributeError, TypeError, ValueError) as exc:  # e.g. a number where a list or mapping belongs
        raise SpecError(f"malformed spec ({exc})", source) from exc
    return spec
