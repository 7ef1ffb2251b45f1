"""Writes configs/cards/lite2/localisation_why.md: where the shipped default's Grad-CAM misses the lesion.

    .venv/bin/python configs/cards/lite2/localisation_why.py runs/lite2_lsm_mask [runs/lite2_cam_mask]

Reads the per-photo figures of ``dermviewer-train localisation-cv`` (``<run>/localisation/localisation.csv``)
and the diagnoses of ``../shared/data/pad_ufes_20/manifest.csv``; prints and writes the tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "manifest.csv"
OUT = Path(__file__).with_suffix(".md")


EYE = ("Twelve misses of `lite2_cam_mask` drawn at random (pandas `sample(12, random_state=3)`) and looked at "
       "by eye with the mask outline and the peak drawn on the photo: in 6 the peak sits on the lesion's own edge, "
       "just outside the dilated outline (the map has one cell per 16 px of the 256 px input); in 3 on a "
       "clinician's pen mark next to the lesion (ink lines and circles around the lesion appear on "
       "a number of PAD-UFES-20 photos); in 3 on another spot or lesion in the frame. Pen marks are a known "
       "confounder of dermatology classifiers; nothing in training removes them.")


def per_photo(run: Path) -> pd.DataFrame:
    d = pd.read_csv(run / "localisation" / "localisation.csv")
    d = d[d.status != "no_mask"].copy()
    m = pd.read_csv(MANIFEST)
    m["key"] = m.image.str.split("/").str[-1].str.rsplit(".", n=1).str[0]
    d["key"] = d.image.str.rsplit(".", n=1).str[0]
    return d.merge(m[["key", "diagnosis_code"]], on="key", how="left", validate="one_to_one")


def pct(x: pd.Series) -> str:
    return f"{100 * x.mean():.1f}"


def main(argv: list[str]) -> int:
    runs = [Path(a) for a in argv] or [ROOT / "runs" / "lite2_lsm_mask"]
    d = per_photo(runs[0])
    lines = [f"Per-photo figures of `{runs[0].name}` (each fold model on its own test fold, "
             f"{len(d)} photos with a mask), by true diagnosis and by lesion size:", "",
             "| Photos | n | Grad-CAM pointing (%) | Centre prior (%) | LSM hit rate (%) | Median lesion area (%) |",
             "|---|---|---|---|---|---|"]
    for code, g in d.groupby("diagnosis_code"):
        lines.append(f"| {code} | {len(g)} | {pct(g.pointing)} | {pct(g.centre_prior)} | {pct(g.lsm_hit_rate)} | "
                     f"{100 * g.area_share.median():.1f} |")
    rest = d[d.diagnosis_code != "ACK"]
    lines.append(f"| all but ACK | {len(rest)} | {pct(rest.pointing)} | {pct(rest.centre_prior)} | "
                 f"{pct(rest.lsm_hit_rate)} | {100 * rest.area_share.median():.1f} |")
    quart = pd.qcut(d.area_share, 4)
    for q, g in d.groupby(quart, observed=True):
        lines.append(f"| lesion area {max(0.0, 100 * q.left):.1f}-{100 * q.right:.1f} % | {len(g)} | "
                     f"{pct(g.pointing)} | {pct(g.centre_prior)} | {pct(g.lsm_hit_rate)} | "
                     f"{100 * g.area_share.median():.1f} |")
    for run in runs[1:]:
        s = json.loads((run / "localisation" / "localisation_cv.json").read_text(encoding="utf-8"))["summary"]
        lines += ["", f"`{run.name}` (CV, 5 folds): Grad-CAM pointing {100 * s['pointing_game']['mean']:.1f} ± "
                  f"{100 * s['pointing_game']['std']:.1f} %, LSM hit rate {100 * s['lsm_hit_rate']['mean']:.1f} ± "
                  f"{100 * s['lsm_hit_rate']['std']:.1f} %, CAM energy {s['energy_ratio']['mean']:.2f} ± "
                  f"{s['energy_ratio']['std']:.2f}x its area share."]
    ack, small = d[d.diagnosis_code == "ACK"], d[d.area_share < d.area_share.quantile(0.25)]
    lines += ["", f"Reading. The misses concentrate on actinic keratosis ({pct(ack.pointing)} % pointing, "
              f"{len(ack[ack.pointing < 0.5])} of the {len(d[d.pointing < 0.5])} misses): it arises on sun-damaged "
              "skin, often as several lesions of which the mask outlines one, and the map points at the damaged "
              f"skin around it. Small lesions (the smallest quarter, under {100 * d.area_share.quantile(0.25):.1f} "
              f"% of the photo) are pointed at on {pct(small.pointing)} % of photos. " + EYE]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
