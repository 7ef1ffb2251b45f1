"""``pip install .`` as a user gets it (issue 16): the wheel is built from a copy of the working tree, installed
with ``--no-deps`` into a fresh venv under ``tmp_path``, and its console scripts are run from ``tmp_path`` with
the repository off ``sys.path``, so only what the wheel carries can be imported: a missing resource (a model,
its card, the sample photo, a taxonomy) fails here, not on a user's machine.

The new venv's third-party packages (torch and the rest, ~5.5 GB) come from the project venv through a ``.pth``
line naming its site-packages: a path line adds the folder to ``sys.path`` but the ``.pth`` files inside it are
not run, so the project venv's editable-install hook never puts the checkout back on the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import resources
from tests.dermviewer.qt.test_self_test import SUMMARY

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images" / "PAT_100_393_595.jpg"
SOURCES = ("engine", "training", "dermviewer", "resources")  # [tool.setuptools.packages.find] include
TIMEOUT = 300

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    workdir: Path  # the cwd of every run: neither the repo nor anything holding our packages
    env: dict[str, str]

    def script(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)


def _copy_tree(dest: Path) -> Path:
    """The packaging inputs of the working tree (untracked resources included: a new model file must ship as
    soon as it is in ``resources/``), without the repo's ``build/`` and ``*.egg-info``: setuptools reuses a
    stale ``SOURCES.txt``, which kept ``lesion_finder.onnx`` in the wheel with ``*.onnx`` taken out of
    package-data, so the check below would not have tripped on a fresh clone's missing file."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for licence in ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(licence, src / licence.name)
    for pkg in SOURCES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return src


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel-install")
    src = _copy_tree(base)
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    # --no-build-isolation --no-index: setuptools from this venv, nothing downloaded
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(base / "dist"), str(src)], check=True, env=pip_env, cwd=base, timeout=TIMEOUT)
    (wheel,) = (base / "dist").glob("dermviewer-*.whl")
    shutil.rmtree(src)  # 40 MB of models; the wheel holds what is needed
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dermviewer_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, env=pip_env, cwd=base, timeout=TIMEOUT)
    workdir = base / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1", DERMVIEWER_CACHE_DIR=str(base / "cache"),
               DERMVIEWER_CONFIG_DIR=str(base / "config"))
    return Installed(wheel, venv, site, workdir, env)


def _resource_files() -> list[str]:
    out = []
    for p in sorted((ROOT / "resources").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            out.append(p.relative_to(ROOT).as_posix())
    return out


def test_the_wheel_carries_every_resource_file_and_the_console_scripts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        entry_points = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        default = whl.read("resources/models/default.dmvb")
    needed = {"resources/models/default.dmvb", "resources/models/default.md", "resources/models/default.cv.json",
              "resources/models/default.oof.h5", "resources/models/student.dmvb", "resources/models/student.md",
              "resources/samples/PAT_656_1246_483.jpg", "resources/samples/ATTRIBUTION.md",
              "resources/taxonomies/pad_ufes_20.yaml", "resources/taxonomies/ilds_2016_morphology.yaml"}
    shipped = set(_resource_files())  # whatever lies in resources/ is there to ship: onnx finders, cards, ...
    assert needed <= shipped
    assert not shipped - names, f"in resources/ but not in the wheel (package-data in pyproject.toml): " \
                                f"{sorted(shipped - names)}"
    assert hashlib.sha256(default).digest() == hashlib.sha256(resources.default_model_path().read_bytes()).digest()
    for script in ("dermviewer = dermviewer.__main__:main", "dermviewer-predict = engine.cli:main",
                   "dermviewer-train = training.cli:main"):
        assert script in entry_points
    assert not any(n.startswith(("tests/", "benchmarks/", "runs/", "build/")) for n in names)


def test_the_installed_copy_imports_its_own_packages_not_the_checkout(installed: Installed) -> None:
    code = ("import importlib.util, json, sys, resources, engine, dermviewer, training; "
            "print(json.dumps({'files': [m.__file__ for m in (resources, engine, dermviewer, training)], "
            "'model': str(resources.default_model_path()), 'torch': importlib.util.find_spec('torch').origin, "
            "'path': sys.path}))")
    proc = installed.run(installed.script("python"), "-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    for f in [*got["files"], got["model"]]:
        assert Path(f).is_relative_to(installed.site_packages), f
    assert Path(got["model"]).is_file()
    assert Path(got["torch"]).is_relative_to(sysconfig.get_path("purelib"))  # the dependencies, through the .pth
    assert not any(p and Path(p).resolve() == ROOT for p in got["path"]), got["path"]


def test_the_installed_self_test_console_script_exits_0_with_its_summary(installed: Installed) -> None:
    proc = installed.run(installed.script("dermviewer"), "--self-test")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    m = SUMMARY.match(lines[0])
    assert m, lines[0]
    assert m["file"] == "default.dmvb" and m["photo"] == "PAT_656_1246_483.jpg"


def test_the_installed_predict_json_on_a_shared_photo_agrees_with_the_checkout(installed: Installed) -> None:
    if not PHOTO.is_file():
        pytest.fail(f"PAD-UFES-20 photo not found at {PHOTO}; tests run with ../shared beside the repo")
    proc = installed.run(installed.script("dermviewer-predict"), "--json", str(PHOTO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(proc.stdout)
    assert row["image"] == str(PHOTO)
    from engine.imageio import load_image
    from engine.inference import Predictor

    predictor = Predictor(resources.default_model_path(), device="cpu", backend="torch")
    expected = predictor.predict(load_image(PHOTO))
    got = {d["code"]: d["probability"] for d in row["differential"]}
    want = {s.code: s.probability for s in expected.differential}
    assert set(got) == set(want)
    np.testing.assert_allclose([got[c] for c in want], list(want.values()), atol=5e-3)  # ORT there, torch here
    assert row["differential"][0]["code"] == expected.top.code
    assert {"body_parts", "attributes"} <= row.keys()
    if resources.resource_path("models", "lesion_finder.onnx").is_file():  # shipped: the installed copy finds it
        assert isinstance(row.get("lesions"), list) and row["lesions"], row.get("lesions")
