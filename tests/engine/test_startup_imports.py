"""The prediction path imports no torch, torchvision or timm (issue 14): checked in fresh subprocesses.

Each child imports (or runs) one part of the prediction path and prints which of the heavy modules ended
up in ``sys.modules``; adding ``import torch`` at the top of any module on that path makes these fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"
PHOTO = DATA / "images" / "PAT_100_393_898.jpg"
HEAVY = ("torch", "torchvision", "timm")

_REPORT = f"import json, sys; print('LOADED ' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the default bundle's graph (building it needs torch: done here, not in the children)."""
    import resources
    from engine.onnx_cache import build_entry

    root = tmp_path_factory.mktemp("cache")
    build_entry(resources.default_model_path(), root / "onnx")
    return root


def _child(code: str, cache: Path | None = None, tmp: Path | None = None) -> tuple[list[str], str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    if cache is not None:
        env["DERMVIEWER_CACHE_DIR"] = str(cache)
    if tmp is not None:
        env["DERMVIEWER_CONFIG_DIR"] = str(tmp / "config")
    out = subprocess.run([sys.executable, "-c", code + "\n" + _REPORT], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("LOADED "))
    return json.loads(line[len("LOADED "):]), out.stdout


def test_the_guard_sees_torch_when_it_is_imported() -> None:
    loaded, _ = _child("import engine.inference, torch")
    assert loaded == ["torch"]


def test_importing_the_prediction_path_loads_no_torch() -> None:
    loaded, _ = _child("import engine, engine.inference, engine.prediction, engine.preprocess, engine.imageio, "
                       "engine.taxonomy, engine.context, engine.bundle, engine.cli, engine.onnx_cache, "
                       "engine.backends.onnx_backend, engine.models.config")
    assert loaded == []


def test_dermviewer_predict_on_a_real_photo_loads_no_torch(onnx_cache: Path) -> None:
    assert PHOTO.is_file(), f"PAD-UFES-20 photo not found at {PHOTO}"
    code = ("import sys; from engine.cli import main; "
            f"rc = main([{str(PHOTO)!r}, '--backend', 'onnx', '--json']); assert rc == 0, rc")
    loaded, stdout = _child(code, onnx_cache)
    assert loaded == []
    result = json.loads(stdout[: stdout.index("LOADED ")])
    assert result[0]["image"] == str(PHOTO)
    assert result[0]["differential"], result  # a real answer, not an error object


def test_the_app_loads_the_model_and_shows_the_first_differential_without_torch(onnx_cache: Path,
                                                                                tmp_path: Path) -> None:
    """The window, its model load (menus.load_model_file) and the first differential: torch is checked for
    at the moment the differential is shown, before the coordinator starts loading it for Grad-CAM."""
    code = f"""
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from dermviewer.qt.app import create_window
from dermviewer.state.settings import Settings
win = create_window([Path({str(PHOTO)!r})], settings=Settings(device="cpu"))
seen = {{}}
def shown():
    seen.setdefault("heavy", [m for m in {HEAVY!r} if m in sys.modules])
    seen["backend"] = win.state.model.predictor.backend_name
    app.quit()
win.controller.case_shown.connect(shown)
QTimer.singleShot(300_000, app.quit)
win.show()
app.exec()
print("SEEN", seen)
assert seen["heavy"] == [] and seen["backend"] == "onnx", seen
"""
    _child(code, onnx_cache, tmp_path)


def test_the_grad_cam_prefetch_imports_its_torch_free_modules_and_no_torch() -> None:
    """What the app imports while the first differential is computed (dermviewer.state.model.PREFETCH_MODULES)."""
    loaded, out = _child("from dermviewer.state.model import PREFETCH_MODULES, prefetch_explain_imports\n"
                         "t = prefetch_explain_imports(); t.join()\n"
                         "assert prefetch_explain_imports() is t  # once per process\n"
                         "import sys, matplotlib\n"
                         "import importlib.util as u\n"
                         "have = all(m in sys.modules for m in PREFETCH_MODULES if u.find_spec(m.split('.')[0]))\n"
                         "print('HAVE', have, matplotlib.get_backend().lower())")
    assert loaded == []
    assert "HAVE True agg" in out


def test_dermviewer_predict_with_the_lesion_finder_loads_no_scikit_learn(onnx_cache: Path) -> None:
    """scikit-learn takes over a second to import here; the CLI's lesion finder once pulled it in through
    engine.metrics (whose names now load lazily), doubling `dermviewer-predict`'s time on one photo."""
    code = ("import sys; from engine.cli import main; "
            f"rc = main([{str(PHOTO)!r}, '--json']); assert rc == 0, rc\n"
            "print('SKLEARN', 'sklearn' in sys.modules, 'engine.lesions' in sys.modules)")
    loaded, stdout = _child(code, onnx_cache)
    assert loaded == []
    assert "SKLEARN False True" in stdout  # the finder ran, and scikit-learn stayed out
    assert '"lesions"' in stdout[: stdout.index("SKLEARN")]
