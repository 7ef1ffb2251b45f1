"""A dataset to evaluate on: photos, their labels in the model's taxonomy, and the facts to slice by.

Four ways in (issue 12, "Open a dataset"): a manifest CSV with its dataset spec, a plain folder of
photos with a labels CSV, an HDF5 pack (``dermviewer-train pack``) and the out-of-fold predictions
of a cross-validation run (:mod:`dermviewer.state.research.oof`). Labels are held as indices into
the *model's* taxonomy (-1 = unknown, excluded or unmapped; :mod:`~dermviewer.state.research.mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dermviewer.state.research.errors import DatasetError
from dermviewer.state.research.images import FileImages, ImageSource
from dermviewer.state.research.mapping import MappingReport, TaxonomyMapping
from dermviewer.state.research.spec import ManifestSpec, default_manifest_spec, read_spec
from engine.masks import MaskError, MaskSource
from engine.taxonomy import Taxonomy, load_taxonomy

__all__ = ["SUBGROUP_COLUMNS", "EvalDataset", "age_band", "from_frame", "join_manifest", "mask_paths", "open_folder",
           "open_manifest"]

SUBGROUP_COLUMNS = ("body_part", "fitzpatrick", "sex", "age_band")
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}
_IMAGE_COLUMNS = ("image", "file", "filename", "path", "img_id", "image_id")
_LABEL_COLUMNS = ("diagnosis_code", "diagnosis", "label", "dx", "class")


def age_band(value: str) -> str:
    """Fifteen-year bands (clinical papers report 'under 30 / 30-44 / ...'); '' when unknown."""
    try:
        age = float(value)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(age):
        return ""
    for hi, label in ((30, "<30"), (45, "30-44"), (60, "45-59"), (75, "60-74")):
        if age < hi:
            return label
    return "75+"


@dataclass
class EvalDataset:
    """Photos + labels. ``disease``/``body_part`` are (N,) int64 with -1 = unknown; ``attributes`` is
    (N, C) float32 with ``attributes_known`` marking recorded cells (a blank is not a "no")."""

    name: str
    source: Path
    kind: str  # "manifest" | "folder" | "pack" | "oof"
    taxonomy: Taxonomy
    ids: list[str]
    images: ImageSource
    disease: np.ndarray
    label_status: list[str]
    body_part: np.ndarray
    attributes: np.ndarray
    attributes_known: np.ndarray
    eval_exclude: np.ndarray
    groups: list[str]
    metadata: dict[str, list[str]] = field(default_factory=dict)
    mask_paths: list[Path | None] = field(default_factory=list)
    mapping: MappingReport | None = None
    frame: pd.DataFrame | None = None  # the input manifest's rows (export keeps its columns)
    root: Path | None = None
    image_column: str = "image"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def scored(self) -> np.ndarray:
        """Photos that enter the disease metrics: a known, mapped label and not excluded from evaluation."""
        return (self.disease >= 0) & ~self.eval_exclude

    @property
    def has_mask(self) -> np.ndarray:
        return np.array([p is not None for p in self.mask_paths], dtype=bool)

    def subgroup(self, column: str) -> list[str]:
        """Values of a subgroup column for every photo ('' where unknown)."""
        if column == "age_band":
            return [age_band(v) for v in self.metadata.get("age", [""] * len(self))]
        if column == "sex":
            return self.metadata.get("sex") or self.metadata.get("gender") or [""] * len(self)
        if column == "body_part":
            codes = _codes(self.taxonomy, "body_part")
            return [codes[i] if i >= 0 else "" for i in self.body_part]
        return self.metadata.get(column, [""] * len(self))

    def flag(self, column: str) -> np.ndarray:
        return np.array([v.strip().lower() in _TRUE for v in self.metadata.get(column, [""] * len(self))])

    def display_name(self, index: int) -> str:
        p = self.images.path(index)
        return p.name if p is not None else self.ids[index]


def _codes(taxonomy: Taxonomy, head: str) -> list[str]:
    return taxonomy.head(head).codes if head in taxonomy.heads else []


def _cells(df: pd.DataFrame, column: str | None) -> list[str]:
    if column is None or column not in df.columns:
        return [""] * len(df)
    return [str(v).strip() for v in df[column].tolist()]


def mask_paths(root: Path, photos: list[Path | None]) -> list[Path | None]:
    """Each photo's lesion mask in ``<root>/masks`` (PAD-UFES-20's layout, its README), found by
    ``engine.masks.MaskSource`` (stem match, ``_mask`` suffix allowed); None where there is none."""
    folder = root / "masks"
    if not folder.is_dir():
        return [None] * len(photos)
    try:
        source = MaskSource.from_folder(folder)
    except MaskError:
        return [None] * len(photos)
    return [None if p is None else source.path_for(p) for p in photos]


def from_frame(df: pd.DataFrame, spec: ManifestSpec, taxonomy: Taxonomy, *, kind: str, source: Path,
               mapping: TaxonomyMapping | None = None) -> EvalDataset:
    """Build a dataset from a labels table whose columns the spec names (shared by manifest and folder)."""
    missing = [c for c in (spec.image_column, spec.disease_column) if c not in df.columns]
    if missing:
        raise DatasetError(f"missing column(s) {missing}; the file has {list(df.columns)[:12]}", source)
    d_codes = taxonomy.head("disease").codes
    raw = [spec.disease_aliases.get(v, v) for v in _cells(df, spec.disease_column)]
    codes, status, report = (mapping or TaxonomyMapping()).apply(raw, d_codes)
    disease = np.array([d_codes.index(c) if c else -1 for c in codes], dtype=np.int64)
    b_codes = _codes(taxonomy, "body_part")
    body = np.array([b_codes.index(v) if v in b_codes else -1 for v in _cells(df, spec.body_part_column)],
                    dtype=np.int64)
    a_codes = _codes(taxonomy, "attributes")
    attrs = np.zeros((len(df), len(a_codes)), np.float32)
    known = np.zeros_like(attrs, dtype=bool)
    for j, code in enumerate(a_codes):
        for i, v in enumerate(_cells(df, spec.attributes.get(code))):
            low = v.lower()
            if low in _TRUE or low in _FALSE:
                attrs[i, j], known[i, j] = float(low in _TRUE), True
    exclude = np.zeros(len(df), dtype=bool)
    for col in spec.exclude_from_eval:
        exclude |= np.array([v.lower() in _TRUE for v in _cells(df, col)], dtype=bool)
    paths = []
    for v in _cells(df, spec.image_column):
        p = Path(v)
        p = p if p.is_absolute() else spec.root / p
        if not p.suffix and not p.exists():
            p = next((p.with_suffix(s) for s in (".jpg", ".png", ".jpeg") if p.with_suffix(s).is_file()), p)
        paths.append(p)
    ids = _cells(df, spec.id_column) if spec.id_column in df.columns else [p.name for p in paths]
    return EvalDataset(
        name=spec.name, source=source, kind=kind, taxonomy=taxonomy, ids=ids, images=FileImages(paths),
        disease=disease, label_status=status, body_part=body, attributes=attrs, attributes_known=known,
        eval_exclude=exclude, groups=_cells(df, spec.group_column),
        metadata={c: _cells(df, c) for c in df.columns}, mask_paths=mask_paths(spec.root, list(paths)),
        mapping=report, frame=df, root=spec.root, image_column=spec.image_column,
    )


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError("CSV file not found", path)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatasetError(f"cannot read the CSV: {exc}", path) from exc


def open_manifest(path: str | Path, *, taxonomy: Taxonomy | None = None, mapping: TaxonomyMapping | None = None,
                  limit: int | None = None) -> EvalDataset:
    """A dataset spec (``.yaml``) or a manifest CSV with PAD-UFES-20's column names.

    ``taxonomy`` is the model's; by default the spec's. ``limit`` keeps the first rows (tests, previews).
    """
    path = Path(path)
    spec = read_spec(path) if path.suffix.lower() in (".yaml", ".yml") else default_manifest_spec(path)
    tax = taxonomy or load_taxonomy(spec.taxonomy)
    df = _read_csv(spec.manifest)
    if limit is not None:
        df = df.iloc[:limit].reset_index(drop=True)
    return from_frame(df, spec, tax, kind="manifest", source=spec.manifest, mapping=mapping)


def open_folder(folder: str | Path, labels_csv: str | Path, *, taxonomy: Taxonomy,
                mapping: TaxonomyMapping | None = None) -> EvalDataset:
    """A folder of photos plus a CSV naming each file and its diagnosis (columns found by common names)."""
    folder, csv_path = Path(folder), Path(labels_csv)
    if not folder.is_dir():
        raise DatasetError("photo folder not found", folder)
    df = _read_csv(csv_path)
    lower = {c.lower(): c for c in df.columns}
    image = next((lower[c] for c in _IMAGE_COLUMNS if c in lower), None)
    label = next((lower[c] for c in _LABEL_COLUMNS if c in lower), None)
    if image is None or label is None:
        raise DatasetError(f"needs a photo column (one of {_IMAGE_COLUMNS}) and a label column (one of "
                           f"{_LABEL_COLUMNS}); found {list(df.columns)}", csv_path)
    spec = ManifestSpec(manifest=csv_path, root=folder, image_column=image, id_column=None, group_column=None,
                        disease_column=label, body_part_column=lower.get("body_part"),
                        attributes={c: lower[c] for c in _codes(taxonomy, "attributes") if c in lower},
                        name=folder.name)
    return from_frame(df, spec, taxonomy, kind="folder", source=csv_path, mapping=mapping)



def join_manifest(ds: EvalDataset, manifest: Path) -> None:
    """Attach photos, metadata and masks from a manifest to a dataset that knows only ids (pack, OOF file).

    Rows are matched on the spec's id column (``img_id``); an id the manifest lacks keeps no photo.
    """
    spec = read_spec(manifest) if manifest.suffix.lower() in (".yaml", ".yml") else default_manifest_spec(manifest)
    df = _read_csv(spec.manifest)
    key = spec.id_column if spec.id_column in df.columns else spec.image_column
    if key not in df.columns:
        raise DatasetError(f"has no id column {spec.id_column!r} to match photos on", spec.manifest)
    where = {v: i for i, v in enumerate(_cells(df, key))}
    rows = [where.get(i, -1) for i in ds.ids]
    if not any(r >= 0 for r in rows):
        raise DatasetError(f"none of the {len(ds)} photos' ids is in its {key!r} column", spec.manifest)
    aligned = df.iloc[[max(r, 0) for r in rows]].reset_index(drop=True)
    blank = [r < 0 for r in rows]
    cells = {c: ["" if b else v for v, b in zip(_cells(aligned, c), blank, strict=True)] for c in df.columns}
    paths: list[Path | None] = []
    for v in cells[spec.image_column]:
        paths.append(None if not v else (Path(v) if Path(v).is_absolute() else spec.root / v))
    ds.images = FileImages(paths)
    ds.metadata = cells
    ds.groups = cells.get(spec.group_column or "", ds.groups)
    ds.mask_paths = mask_paths(spec.root, paths)
    ds.frame, ds.root, ds.image_column = aligned, spec.root, spec.image_column
