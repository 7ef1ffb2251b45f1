"""Export: tables to CSV, and a selection of photos to a new manifest CSV that the annotate mode opens.

The new manifest has exactly the input manifest's columns, in order, with the image column rewritten
so it still finds the photos from the new file's folder (relative where possible, else absolute).
A dataset without a manifest (a bare pack) gets the PAD-UFES-20 core columns.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.errors import DatasetError

__all__ = ["export_manifest", "export_table"]


def export_table(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(list(header))
            for row in rows:
                w.writerow(["" if isinstance(v, float) and not np.isfinite(v) else v for v in row])
    except OSError as exc:
        raise DatasetError(f"cannot write the table: {exc.strerror}", out) from exc
    return out


def _relative(photo: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(photo.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(photo.resolve())


def export_manifest(dataset: EvalDataset, indices: Sequence[int], path: str | Path) -> Path:
    """Write the selected photos' manifest rows to ``path`` (a CSV), in the order given."""
    out = Path(path)
    idx = [int(i) for i in indices]
    if not idx:
        raise DatasetError("nothing selected to export", out)
    folder = out.parent
    if dataset.frame is not None:
        df = dataset.frame.iloc[idx].copy()
        col = dataset.image_column
    else:
        codes = dataset.taxonomy.head("disease").codes
        df = pd.DataFrame({"image": [""] * len(idx), "img_id": [dataset.ids[i] for i in idx],
                           "diagnosis_code": [codes[d] if d >= 0 else "" for d in dataset.disease[idx]]})
        col = "image"
    photos = [dataset.images.path(i) for i in idx]
    df[col] = ["" if p is None else _relative(p, folder) for p in photos]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
    except OSError as exc:
        raise DatasetError(f"cannot write the manifest: {exc.strerror}", out) from exc
    return out
