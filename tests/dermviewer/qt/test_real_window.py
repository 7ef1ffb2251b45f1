"""The real window under Xvfb (Debian xvfb, installed by packaging/sysdeps.sh): it opens a real photo,
shows the prediction and the Grad-CAM, and the picture grabbed from it is not blank."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.imageio import load_image

ROOT = Path(__file__).resolve().parents[3]


def test_real_window_under_xvfb_is_not_blank(tmp_path: Path):
    xvfb = shutil.which("xvfb-run")
    assert xvfb, "xvfb-run is missing: run packaging/sysdeps.sh (make test does)"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["DERMVIEWER_CONFIG_DIR"] = str(tmp_path / "config")
    out = tmp_path / "window.png"
    proc = subprocess.run(
        [xvfb, "-a", sys.executable, str(ROOT / "tests" / "screenshot.py"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    img = load_image(out)
    assert img.shape[0] > 600 and img.shape[1] > 1000
    assert float(img.std()) > 10
    # the photo area is not a flat colour: some window region shows real image content
    h, w = img.shape[:2]
    centre = img[h // 4 : 3 * h // 4, w // 6 : w // 2].astype(np.float32)
    assert centre.std() > 5
