"""A bundle's preprocessing block is user input: every field is checked when the bundle opens.

Before, ``PreprocessConfig.from_dict`` took any value: ``img_size: 100000`` reached OpenCV as a 40 GB
resize, ``std: [0, 0, 0]`` gave NaN probabilities and ``mean: [0.5]`` failed only at the first photo.
Each bad value below is written into a real saved bundle, whose loading must name the file and the field.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.bundle import load_bundle
from engine.errors import BundleError
from engine.imageio import load_image
from engine.inference import Predictor
from engine.preprocess import PreprocessConfig, preprocess


def _with_preprocess(bundle: Path, out: Path, **changes: object) -> Path:
    blob = bundle.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    config = json.loads(header["__metadata__"]["dermviewer_bundle"])
    config["preprocess"].update(changes)
    header["__metadata__"]["dermviewer_bundle"] = json.dumps(config)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    out.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n :])
    return out


BAD = [
    ({"img_size": 100_000}, "img_size"),
    ({"img_size": 0}, "img_size"),
    ({"img_size": "224"}, "img_size"),
    ({"img_size": True}, "img_size"),
    ({"std": [0, 0, 0]}, "std"),
    ({"std": [0.5, -1, 0.5]}, "std"),
    ({"mean": [0.5]}, "mean"),
    ({"mean": "abc"}, "mean"),
    ({"mean": [0.5, "NaN", 0.5]}, "mean"),
    ({"tta_hflip": "yes"}, "tta_hflip"),
    ({"interpolation": "nearest-ish"}, "interpolation"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f"{k}={v!r}" for (c, _) in BAD for k, v in c.items()])
def test_a_bad_preprocess_field_is_a_bundle_error_naming_file_and_field(tiny_bundle: Path, tmp_path: Path,
                                                                        change: dict, field: str) -> None:
    path = _with_preprocess(tiny_bundle, tmp_path / "edited.dmvb", **change)
    with pytest.raises(BundleError, match=field) as err:
        load_bundle(path)
    assert err.value.path == path


def test_the_saved_values_still_load_and_predict_a_real_photo(tiny_bundle: Path, tmp_path: Path,
                                                              data_dir: Path) -> None:
    """The check refuses nothing a valid bundle holds: a good edit loads and predicts a PAD-UFES-20 photo."""
    path = _with_preprocess(tiny_bundle, tmp_path / "ok.dmvb", mean=[0.4, 0.45, 0.5], std=[0.2, 0.25, 0.3])
    bundle = load_bundle(path)
    assert bundle.preprocess == PreprocessConfig(img_size=96, mean=(0.4, 0.45, 0.5), std=(0.2, 0.25, 0.3))
    photo = data_dir / "images" / "PAT_100_393_595.jpg"
    x = preprocess(load_image(photo), bundle.preprocess)
    assert x.shape == (3, 96, 96) and np.isfinite(x).all()
    p = Predictor(bundle, device="cpu").predict(load_image(photo))
    assert abs(sum(s.probability for s in p.differential) - 1) < 1e-4
