"""Patient metadata for a photo, where a dataset manifest beside it gives it (PAD-UFES-20 layout).

PAD-UFES-20 keeps photos in ``images/`` and ``manifest.csv`` one folder up, keyed by the photo's
relative path. Only what helps read the photo is shown -- age, sex, Fitzpatrick type and region --
never the ground-truth diagnosis, which would bias the review.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

__all__ = ["MANIFEST_NAME", "SHOWN_FIELDS", "find_manifest", "manifest_row", "photo_metadata"]

MANIFEST_NAME = "manifest.csv"
SHOWN_FIELDS = {"age": "Age", "gender": "Sex", "fitzpatrick": "Fitzpatrick type", "body_part": "Region"}


def find_manifest(photo: Path) -> Path | None:
    for folder in (photo.parent, photo.parent.parent):
        cand = folder / MANIFEST_NAME
        if cand.is_file():
            return cand
    return None


@lru_cache(maxsize=4)
def _read_manifest(path: Path, mtime_ns: int) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = row.get("image") or row.get("img_id") or ""
            if key:
                rows[Path(key).name] = row
                rows.setdefault(Path(key).stem, row)
    return rows


def manifest_row(photo: str | Path) -> dict[str, str] | None:
    """The photo's whole manifest row (every column, as written), or None when no manifest names it."""
    photo = Path(photo)
    manifest = find_manifest(photo)
    if manifest is None:
        return None
    try:
        rows = _read_manifest(manifest.resolve(), manifest.stat().st_mtime_ns)
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    return rows.get(photo.name) or rows.get(photo.stem)


def photo_metadata(photo: str | Path) -> dict[str, str]:
    """``{"Age": "54", "Sex": "male", ...}`` for the photo, or ``{}`` when no manifest names it."""
    row = manifest_row(photo)
    if row is None:
        return {}
    out = {}
    for key, label in SHOWN_FIELDS.items():
        value = (row.get(key) or "").strip()
        if value and value.lower() not in ("nan", "unk", "unknown"):
            out[label] = value.replace("_", " ")
    return out
