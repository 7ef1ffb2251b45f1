"""A dataset spec (``configs/data/*.yaml``) read without the training package.

The app must not import ``training`` (dependency rules), so this reads the same keys as
``training.data.spec`` does -- ``root``, ``manifest``, ``taxonomy``, ``image_column``, ``id_column``,
``group_column``, ``heads``, ``exclude_from_eval``, ``metadata`` -- and nothing else. Relative roots
resolve against the spec file's folder, exactly as there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dermviewer.state.research.errors import DatasetError

__all__ = ["ManifestSpec", "default_manifest_spec", "read_spec"]


@dataclass(frozen=True)
class ManifestSpec:
    """Which manifest columns feed which head. ``attributes`` maps attribute code -> column."""

    manifest: Path
    root: Path
    taxonomy: str = "pad_ufes_20"
    image_column: str = "image"
    id_column: str | None = "img_id"
    group_column: str | None = "patient_id"
    disease_column: str = "diagnosis_code"
    disease_aliases: dict[str, str] = field(default_factory=dict)
    body_part_column: str | None = "body_part"
    attributes: dict[str, str] = field(default_factory=dict)
    exclude_from_eval: tuple[str, ...] = ()
    name: str = "dataset"


def _head(raw: Any, name: str, source: Path) -> tuple[str | None, dict[str, str], dict[str, str]]:
    if isinstance(raw, str):
        return raw, {}, {}
    if not isinstance(raw, dict):
        raise DatasetError(f"head {name!r}: expected a mapping with 'column' or 'columns'", source)
    columns = raw.get("columns") or {}
    if isinstance(columns, list):
        columns = {str(c): str(c) for c in columns}
    aliases = {str(k): str(v) for k, v in (raw.get("aliases") or {}).items()}
    return raw.get("column"), {str(k): str(v) for k, v in columns.items()}, aliases


def read_spec(path: str | Path) -> ManifestSpec:
    """Parse a spec YAML; a missing file or key raises :class:`DatasetError` naming the file."""
    source = Path(path)
    if not source.is_file():
        raise DatasetError("dataset spec not found", source)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read the spec: {exc}", source) from exc
    if not isinstance(data, dict) or not isinstance(data.get("heads"), dict) or "disease" not in data["heads"]:
        raise DatasetError("a spec is a mapping whose 'heads' include 'disease'", source)
    root = (source.parent / str(data.get("root", "."))).resolve()
    heads = data["heads"]
    disease, _, aliases = _head(heads["disease"], "disease", source)
    if not disease:
        raise DatasetError("head 'disease' needs a 'column'", source)
    body = _head(heads["body_part"], "body_part", source)[0] if "body_part" in heads else None
    attrs = _head(heads["attributes"], "attributes", source)[1] if "attributes" in heads else {}
    return ManifestSpec(
        manifest=root / str(data.get("manifest", "manifest.csv")),
        root=root,
        taxonomy=str(data.get("taxonomy", "pad_ufes_20")),
        image_column=str(data.get("image_column", "image")),
        id_column=data.get("id_column"),
        group_column=data.get("group_column"),
        disease_column=str(disease),
        disease_aliases=aliases,
        body_part_column=body,
        attributes=attrs,
        exclude_from_eval=tuple(str(c) for c in data.get("exclude_from_eval") or ()),
        name=str(data.get("name", source.stem)),
    )


def default_manifest_spec(manifest: str | Path) -> ManifestSpec:
    """The PAD-UFES-20 column names, for a manifest opened without its spec (root = its folder)."""
    path = Path(manifest)
    return ManifestSpec(
        manifest=path,
        root=path.parent,
        attributes={c: c for c in ("itch", "grew", "hurt", "changed", "bleed", "elevation")},
        exclude_from_eval=("label_conflict",),
        name=path.parent.name or path.stem,
    )
