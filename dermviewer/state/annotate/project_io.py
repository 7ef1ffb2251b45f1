"""Into and out of a project: a manifest (CSV, or a dataset spec YAML naming one; a research-mode selection is
such a CSV) becomes the starting labels and its ``masks/`` the starting outlines; the corrected labels go out
as a manifest CSV with the input's columns and the outlines as PNG masks plus COCO-style JSON.

Every file is written atomically (:func:`~dermviewer.state.annotate.files.atomic_write`); the source photos
are only read (hashed), never written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image

from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.errors import ProjectError
from dermviewer.state.annotate.files import atomic_write
from dermviewer.state.annotate.outline import Outline
from dermviewer.state.annotate.store import IMPORT, OUTLINE, UNUSABLE, SqlAnnotationStore
from dermviewer.state.research.spec import ManifestSpec, default_manifest_spec, read_spec
from engine.masks import MaskError, load_mask, mask_key

__all__ = ["REASON", "ImportReport", "export_manifest", "export_outlines", "import_manifest"]

REASON = "unusable_reason"


@dataclass
class ImportReport:
    added: int = 0
    outlines: int = 0
    already_there: int = 0
    missing_photos: list[str] = field(default_factory=list)
    invalid_labels: list[str] = field(default_factory=list)  # "key field value"
    bad_masks: list[str] = field(default_factory=list)


def _sha256(path: Path, cache: dict[Path, tuple[str, int]]) -> tuple[str, int]:
    if path not in cache:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        cache[path] = (h.hexdigest(), path.stat().st_size)
    return cache[path]


def _norm_flag(text: str) -> str:
    t = text.strip().lower()
    if t in ("1", "1.0", "true", "yes"):
        return "1"
    if t in ("0", "0.0", "false", "no"):
        return "0"
    return ""


def _photo_size(row: dict[str, str], path: Path) -> tuple[int, int]:
    try:
        return int(row["height"]), int(row["width"])
    except (KeyError, ValueError):
        with Image.open(path) as img:
            return img.height, img.width


def import_manifest(store: SqlAnnotationStore, source: str | Path, *, masks: bool = True) -> ImportReport:
    """Add the manifest's photos with their labels (annotator ``import``) and, with ``masks``, the lesion
    masks in ``masks/`` beside the manifest as outlines. Photos already in the project are left as they are."""
    source = Path(source)
    spec: ManifestSpec = read_spec(source) if source.suffix.lower() in (".yaml", ".yml") else default_manifest_spec(
        source)
    try:
        with spec.manifest.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ProjectError(f"cannot read the manifest: {exc}", spec.manifest) from exc
    if spec.image_column not in columns:
        raise ProjectError(f"the manifest has no {spec.image_column!r} column", spec.manifest)
    folder, mask_dir = spec.manifest.parent, spec.manifest.parent / "masks"
    fields = {f.field: f for f in store.fields()}
    head_columns = {"disease": spec.disease_column, "body_part": spec.body_part_column,
                    **{f"attr:{code}": col for code, col in spec.attributes.items()}}
    head_columns = {k: v for k, v in head_columns.items() if k in fields and v and v in columns}
    report, hashes = ImportReport(), {}  # type: ignore[var-annotated]
    now = time.time()
    existing = {p.key for p in store.photos()}
    photo_rows, staged = [], []
    for row in rows:
        path = (folder / row[spec.image_column]).resolve()
        key = (row.get(spec.id_column or "") or "").strip() or Path(row[spec.image_column]).stem
        if key in existing:
            report.already_there += 1
            continue
        if not path.is_file():
            report.missing_photos.append(str(path))
            continue
        digest, size = _sha256(path, hashes)
        existing.add(key)
        photo_rows.append({"key": key, "path": str(path), "sha256": digest, "size": size,
                           "position": len(existing), "row_json": json.dumps(row)})
        values = {}
        for fld, col in head_columns.items():
            raw = row.get(col) or ""
            value = _norm_flag(raw) if fld.startswith("attr:") else spec.disease_aliases.get(raw, raw).strip()
            if value not in fields[fld].codes:
                report.invalid_labels.append(f"{key} {fld} {raw!r}")
                value = ""
                if value not in fields[fld].codes:
                    continue
            values[fld] = value
        outline = None
        mask_file = mask_dir / f"{mask_key(path)}.png"
        if masks and mask_file.is_file():
            try:
                outline = Outline.from_mask(load_mask(mask_file, _photo_size(row, path))).to_json()
            except (MaskError, OSError) as exc:
                report.bad_masks.append(f"{mask_file}: {exc}")
        staged.append((key, values, outline))
    reason = f"import {spec.manifest.name}"
    with store.transaction() as conn:
        start = (conn.execute(sa.select(sa.func.max(S.photos.c.position))).scalar() or 0)
        for i, r in enumerate(photo_rows):
            r["position"] = start + i + 1
        if photo_rows:
            conn.execute(S.photos.insert(), photo_rows)
        ids = dict(conn.execute(sa.select(S.photos.c.key, S.photos.c.id)).all())
        labels, outlines, audit = [], [], []
        for key, values, outline in staged:
            pid = ids[key]
            for fld, value in values.items():
                labels.append({"photo_id": pid, "annotator": IMPORT, "field": fld, "value": value, "updated_at": now})
                audit.append({"at": now, "annotator": IMPORT, "owner": IMPORT, "photo_id": pid, "field": fld,
                              "old": "", "new": value, "reason": reason})
            if outline is not None:
                summary = Outline.from_json(outline).summary()
                outlines.append({"photo_id": pid, "annotator": IMPORT, "data_json": outline, "summary": summary,
                                 "updated_at": now})
                audit.append({"at": now, "annotator": IMPORT, "owner": IMPORT, "photo_id": pid, "field": OUTLINE,
                              "old": "", "new": summary, "reason": reason})
        for table, batch in ((S.labels, labels), (S.outlines, outlines), (S.audit, audit)):
            if batch:
                conn.execute(table.insert(), batch)
        info = {"image": spec.image_column, "columns": columns, "heads": head_columns}
        if conn.execute(S.project_info.update().where(S.project_info.c.key == "manifest")
                        .values(value=json.dumps(info))).rowcount == 0:
            conn.execute(S.project_info.insert().values(key="manifest", value=json.dumps(info)))
    store._load()
    report.added, report.outlines = len(photo_rows), sum(1 for s in staged if s[2] is not None)
    return report


def _manifest_info(store: SqlAnnotationStore) -> dict:
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(S.project_info.c.value).where(S.project_info.c.key == "manifest")).scalar()
    return json.loads(text) if text else {"image": "image", "columns": [], "heads": {}}


def _relative(photo: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(photo, folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(photo)


def export_manifest(store: SqlAnnotationStore, annotator: str, out: str | Path) -> Path:
    """The manifest as imported, with ``annotator``'s corrected labels (names, malignancy and body-part group
    kept consistent where those columns exist), an ``unusable`` flag (1/0: a dataset spec's
    ``exclude_from_eval: [unusable]`` keeps marked photos out of evaluation) and ``unusable_reason``."""
    out = Path(out)
    info, tax = _manifest_info(store), store.taxonomy()
    columns = list(info["columns"]) + [c for c in (UNUSABLE, REASON) if c not in info["columns"]]
    values = store.values(annotator)
    disease = {c.code: c for c in tax.head("disease").classes} if "disease" in tax.heads else {}
    body = {c.code: c for c in tax.head("body_part").classes} if "body_part" in tax.heads else {}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for p in store.photos():
        row, v = dict(p.row), values.get(p.key, {})
        row[info["image"]] = _relative(p.path, out.parent)
        changed = set()
        for fld, col in info["heads"].items():
            if fld in v and v[fld] != (_norm_flag(row.get(col) or "") if fld.startswith("attr:") else row.get(col)):
                row[col] = v[fld]
                changed.add(fld)
        code = v.get("disease")
        if "disease" in changed and code in disease:  # the derived columns follow a corrected diagnosis
            if "diagnosis" in row:
                row["diagnosis"] = disease[code].name
            if "malignant" in row:
                row["malignant"] = "1" if disease[code].malignant else "0"
        part = v.get("body_part")
        if "body_part" in changed and part in body and "body_part_coarse" in row and body[part].group:
            row["body_part_coarse"] = str(body[part].group)
        row[UNUSABLE], row[REASON] = ("1" if v.get(UNUSABLE) else "0"), v.get(UNUSABLE, "")
        w.writerow(row)
    return atomic_write(out, buf.getvalue())


def export_outlines(store: SqlAnnotationStore, annotator: str, folder: str | Path) -> Path:
    """``folder/masks/<stem>.png`` (0 = skin, 255 = lesion, as the data's masks) and ``folder/annotations.json``
    (COCO: one annotation per outline with its polygons, box ``[x, y, w, h]`` and area; category = disease)."""
    folder = Path(folder)
    tax, values, outlines = store.taxonomy(), store.values(annotator), store.outlines(annotator)
    codes = tax.head("disease").codes if "disease" in tax.heads else []
    coco: dict = {"info": {"description": f"DermViewer outlines by {annotator}", "project": store.location},
                  "categories": [{"id": i + 1, "name": c} for i, c in enumerate(codes or ["lesion"])],
                  "images": [], "annotations": []}
    for p in store.photos():
        o = outlines.get(p.key)
        if o is None:
            continue
        image_id = len(coco["images"]) + 1
        mask_name = f"masks/{mask_key(p.path)}.png"
        coco["images"].append({"id": image_id, "file_name": str(p.path), "width": o.width, "height": o.height,
                               "mask": mask_name})
        mask = o.mask()
        atomic_write(folder / mask_name, Outline.from_mask(mask).mask_png or b"")
        code = values.get(p.key, {}).get("disease", "")
        bbox = [0, 0, 0, 0] if o.box is None else [o.box[0], o.box[1], o.box[2] - o.box[0], o.box[3] - o.box[1]]
        coco["annotations"].append({
            "id": len(coco["annotations"]) + 1, "image_id": image_id,
            "category_id": codes.index(code) + 1 if code in codes else 1,
            "segmentation": [[round(float(c), 1) for pt in poly for c in pt] for poly in o.export_polygons()],
            "bbox": bbox, "area": int(np.count_nonzero(mask)), "iscrowd": 0})
    return atomic_write(folder / "annotations.json", json.dumps(coco, indent=1))
