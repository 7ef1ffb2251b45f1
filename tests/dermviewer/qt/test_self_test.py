"""``dermviewer --self-test`` in a fresh process, as a user or an installer check runs it: the console script
with no display and no QT_QPA_PLATFORM (it must choose offscreen itself), and a corrupt model that must make
it fail loudly. The sample photo is the real PAD-UFES-20 file the attribution names."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import resources
from engine.imageio import load_image

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20"
SUMMARY = re.compile(r"^dermviewer self-test OK: model (?P<model>\S+ v\S+) \((?P<file>[^)]+)\), photo (?P<photo>\S+): "
                     r"top (?P<code>[A-Z]+) (?P<p>[0-9.]+), Grad-CAM overlay drawn \((?P<pct>\d+)% of pixels\), "
                     r"(?P<s>[0-9.]+) s$")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _command() -> list[str]:
    script = Path(sys.executable).with_name("dermviewer")  # the console script pyproject installs
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dermviewer"]


def test_sample_photo_is_the_attributed_pad_ufes_20_file_found_through_importlib_resources() -> None:
    photo = resources.sample_photo_path()
    assert photo.is_file() and photo.parent == resources.resource_path("samples")
    rows = {r["img_id"]: r for r in csv.DictReader((SHARED / "manifest.csv").open(newline=""))}
    row = rows[photo.stem + ".png"]
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == row["sha256"]  # the photo itself, unaltered
    assert load_image(photo).shape == (300, 300, 3)
    note = resources.resource_path("samples", "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needed in ("PAD-UFES-20", "Pacheco", "2020", "CC BY 4.0", "10.1016/j.dib.2020.106221", row["img_id"],
                   row["sha256"]):
        assert needed in note


def test_self_test_exits_0_with_a_summary_that_agrees_with_a_predictor_run_here(predictor) -> None:
    proc = subprocess.run([*_command(), "--self-test"], env=_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    m = SUMMARY.match(lines[0])
    assert m, lines[0]
    expected = predictor.predict(load_image(resources.sample_photo_path()))
    assert m["model"] == f"{predictor.bundle.name} v{predictor.bundle.version}"
    assert m["file"] == resources.default_model_path().name
    assert m["photo"] == resources.sample_photo_path().name
    assert m["code"] == expected.top.code
    np.testing.assert_allclose(float(m["p"]), expected.top.probability, atol=2e-3)
    assert int(m["pct"]) >= 2 and float(m["s"]) > 0


def test_self_test_on_a_corrupt_model_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.dmvb"
    shutil.copyfile(resources.resource_path("models", "student.dmvb"), corrupt)  # the smaller bundle
    blob = bytearray(corrupt.read_bytes())
    blob[-1000] ^= 0xFF  # one flipped bit pattern in the weights: the header still reads
    corrupt.write_bytes(bytes(blob))
    proc = subprocess.run([sys.executable, "-m", "dermviewer", "--self-test", "--model", str(corrupt)],
                          env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-3000:])
    assert "self-test OK" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dermviewer self-test FAILED while loading the model: BundleError:"), last
    assert "checksum mismatch" in last and str(corrupt) in last
