"""Lesion-centred copies of a data set, for the crop classifier of issue 15 (``dermviewer-train lesion-crops``).

Every photo of the spec's manifest is cut around its **out-of-fold** main lesion: the box the lesion finder
of that photo's CV fold found on it (``oof_lesions.json`` of a ``lesion-cv`` run, whose folds are the
classifier's), grown by the margin the app uses (:func:`engine.lesions.lesion_crop`). A photo on which no
lesion was found keeps its whole frame, as the app would. So the classifier trained and scored on these
copies with the same folds sees what it would see in use: no test photo's crop was made by a finder that
was trained on that photo's mask, and no mask is used at all on a test photo.

The copies go to ``<out>/images/`` (PNG, lossless), with ``<out>/manifest.csv`` (the original rows, the
``image`` column pointing at the copy and a ``crop_box`` column) and ``<out>/spec.yaml`` (the original spec
with this root and its own name, so its HDF5 pack is cached apart). Source photos are never modified.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from engine.imageio import load_image, save_image
from engine.lesions import DEFAULT_MARGIN, lesion_crop
from training.data.spec import load_spec

__all__ = ["crop_box_of", "write_crop_dataset"]

Log = Callable[[str], Any]


def crop_box_of(entry: dict[str, Any] | None) -> tuple[int, int, int, int] | None:
    """The main (largest) lesion's box of an ``oof_lesions.json`` entry, or None when none was found."""
    if not entry or not entry.get("lesions"):
        return None
    x0, y0, x1, y1 = entry["lesions"][0]["box"]
    return int(x0), int(y0), int(x1), int(y1)


def write_crop_dataset(spec_path: str | Path, lesion_run: str | Path, out: str | Path,
                       margin: float = DEFAULT_MARGIN, root: str | Path | None = None, log: Log = print) -> Path:
    spec_path, out = Path(spec_path), Path(out)
    spec = load_spec(spec_path, root)
    found = json.loads((Path(lesion_run) / "oof_lesions.json").read_text(encoding="utf-8"))
    (out / "images").mkdir(parents=True, exist_ok=True)
    with spec.manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    image_col, id_col = spec.image_column, spec.id_column
    cropped = whole = 0
    for row in tqdm(rows, desc="lesion crops", unit="photo", leave=False):
        src = spec.root / row[image_col]
        key = row.get(id_col, "") if id_col else ""
        entry = found.get(key) or found.get(Path(row[image_col]).name)
        box = crop_box_of(entry)
        rgb = load_image(src)
        if box is not None:
            if entry is not None and list(entry["size"]) != [rgb.shape[0], rgb.shape[1]]:
                raise ValueError(f"{src}: the lesion run saw this photo at {entry['size']}, it is {rgb.shape[:2]}")
            rgb = lesion_crop(rgb, box, margin)
            cropped += 1
        else:
            whole += 1
        rel = Path("images") / (Path(row[image_col]).stem + ".png")
        save_image(out / rel, rgb)
        row[image_col] = str(rel)
        row["crop_box"] = "" if box is None else " ".join(map(str, box))
    tmp = out / "manifest.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[*fields, "crop_box"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "manifest.csv")
    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    raw["name"] = f"{raw.get('name', 'data')}_lesion_crops"
    raw["root"] = "."
    raw["manifest"] = "manifest.csv"
    (out / "spec.yaml").write_text(
        f"# lesion-centred copies of {spec_path} from the out-of-fold boxes of {lesion_run} (margin {margin})\n"
        + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    log(f"lesion crops: {cropped} photos cut around their out-of-fold lesion, {whole} kept whole -> {out}")
    return out / "spec.yaml"
