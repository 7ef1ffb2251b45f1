"""Start-up figures as a user feels them (issue 14): medians over cold starts, a new process every time.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--photos 100]

Prints, with the load average before and after (the machine may be shared):
- app: process start -> window shown, -> first differential drawn, -> first Grad-CAM drawn (one photo
  on the command line, the default model, default settings: ONNX Runtime, torch loaded in the background);
- ``dermviewer-predict`` on one photo and on ``--photos`` photos;
- the import time of ``engine`` for the prediction path (``engine.inference`` + ``engine.cli``);
- open-to-differential for a 12-megapixel JPEG (a shared photo upscaled to 4000x3000 into a temp dir),
  once the model is loaded, with the draft (DCT-scaled) decode the app uses and with a full decode.
The ONNX cache is built once before the runs (its own figure: a first start after installing a model).
Each child reports wall-clock times (``time.time()``); the parent takes its own just before starting it,
so interpreter start-up is included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"
PHOTO = DATA / "images" / "PAT_100_393_898.jpg"
ORIGINAL = DATA / "originals" / "PAT_1278_965_701.png"
PY = sys.executable
_SCRIPT = Path(PY).parent / "dermviewer-predict"
PREDICT = [str(_SCRIPT)] if _SCRIPT.is_file() else [PY, "-m", "engine.cli"]

_CHILD = r'''
import json, sys, time
T = {}
def mark(name):
    T[name] = time.time()
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from dermviewer.qt.app import create_window
mode, photo = sys.argv[1], sys.argv[2]
win = create_window([photo] if mode != "open12" else [])
c = win.controller
def after_paint(name, then=None):
    def go():
        mark(name)
        if then is not None:
            then()
    QTimer.singleShot(0, go)
def finish():
    print("TIMES " + json.dumps(T), flush=True)
    app.quit()
if mode == "open12":
    def loaded():
        mark("model_loaded")
        c.case_shown.connect(lambda: after_paint("differential", finish))
        mark("open")
        c.open_paths([__import__("pathlib").Path(photo)])
    c.model_loaded.connect(loaded)
else:
    def shown():
        if "differential" in T:
            return
        if mode == "gradcam":
            top = win.state.view.prediction.differential[0]
            head = win.state.model.predictor.bundle.taxonomy.head("disease")
            after_paint("differential", lambda: c.request_gradcam("disease",
                        [k.code for k in head.classes].index(top.code)))
        else:
            after_paint("differential", finish)
    c.case_shown.connect(shown)
    c.gradcam_shown.connect(lambda: after_paint("gradcam", finish))
QTimer.singleShot(120000, finish)
win.show()
after_paint("window")
app.exec()
'''


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["DERMVIEWER_CONFIG_DIR"] = str(tmp / "config")  # default settings every run
    env["DERMVIEWER_CACHE_DIR"] = str(tmp / "cache")
    return env


def _app_run(mode: str, photo: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.time()
    out = subprocess.run([PY, "-c", _CHILD, mode, str(photo)], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("TIMES ")), None)
    if line is None:
        raise RuntimeError(f"app child failed ({out.returncode}): {out.stderr[-2000:]}")
    times = json.loads(line[6:])
    if mode == "open12":
        return {"open_to_differential": times["differential"] - times["open"]}
    return {k: v - t0 for k, v in times.items()}


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {out.stderr[-2000:]}")
    return time.perf_counter() - t0


def _median(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:7.0f} ms  (min {min(xs) * 1e3:.0f}, max {max(xs) * 1e3:.0f}, n={len(xs)})"


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count() or 0} cores"


_BREAKDOWN = r"""
import importlib, json, time
from dermviewer.state.model import EXPLAIN_MODULES
out = {}
t = time.perf_counter()
for m in EXPLAIN_MODULES:
    importlib.import_module(m)
out["imports (torch, timm, pytorch_grad_cam, ...)"] = time.perf_counter() - t
import resources
from engine.bundle import load_bundle
t = time.perf_counter(); b = load_bundle(resources.default_model_path()); model = b.build_model("cpu")
out["load bundle + build torch module"] = time.perf_counter() - t
from dermviewer.state.overlays import gradcam_map
from engine.imageio import load_image
im = load_image(%r)
t = time.perf_counter(); gradcam_map(model, b, im, "disease", 0); out["first Grad-CAM"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _explainer_breakdown(env: dict[str, str]) -> str:
    out = subprocess.run([PY, "-c", _BREAKDOWN % str(PHOTO)], env=env, capture_output=True, text=True, timeout=300,
                         check=True)
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    return "; ".join(f"{k} {v * 1e3:.0f} ms" for k, v in parts.items())


def _big_jpeg(tmp: Path) -> Path:
    import cv2

    from engine.imageio import load_image

    big = cv2.resize(load_image(ORIGINAL), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    out = tmp / "phone_12mp.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--photos", type=int, default=100)
    args = ap.parse_args()
    print(f"before: {_load()}")
    with tempfile.TemporaryDirectory(prefix="dv-bench-startup-") as t:
        tmp = Path(t)
        env = _env(tmp)
        from resources import default_model_path

        model = default_model_path()
        print(f"model: {model} ({model.stat().st_size / 1e6:.1f} MB)")
        t_build = _wall([PY, "-m", "engine.onnx_cache", str(model), "--cache-dir", str(tmp / "cache" / "onnx")], env)
        files = sorted((tmp / "cache" / "onnx").glob("*.onnx"))
        sizes = ", ".join(f"{f.name.split('.', 1)[1]} {f.stat().st_size / 1e6:.1f} MB" for f in files)
        print(f"ONNX cache entry built once (subprocess, torch): {t_build * 1e3:.0f} ms; {sizes}")

        res: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for k, v in _app_run("gradcam", PHOTO, env).items():
                res.setdefault(k, []).append(v)
        print(f"app, {PHOTO.name} on the command line, medians over {args.runs} cold starts:")
        print(f"  window shown            {_median(res['window'])}   target <= 1500 ms")
        print(f"  first differential      {_median(res['differential'])}   target <= 2000 ms")
        print(f"  first Grad-CAM          {_median(res['gradcam'])}   target <= 5000 ms")

        print("  where the Grad-CAM time goes (one process, no window):", _explainer_breakdown(env))

        one = [_wall([*PREDICT, str(PHOTO)], env) for _ in range(args.runs)]
        photos = sorted((DATA / "images").glob("*.jpg"))[: args.photos]
        many = [_wall([*PREDICT, *map(str, photos)], env) for _ in range(args.runs)]
        print(f"dermviewer-predict, 1 photo         {_median(one)}   target <= 1000 ms")
        print(f"dermviewer-predict, {len(photos)} photos      {_median(many)}")
        imp = []
        for _ in range(args.runs):
            out = subprocess.run([PY, "-c", "import time, sys; t = time.perf_counter(); import engine.inference, "
                                  "engine.cli; print(time.perf_counter() - t, 'torch' in sys.modules)"],
                                 env=env, capture_output=True, text=True, check=True)
            secs, torch_loaded = out.stdout.split()
            imp.append(float(secs))
        print(f"import engine.inference + engine.cli  {_median(imp)}   (torch imported: {torch_loaded})")

        big = _big_jpeg(tmp)
        o12 = [_app_run("open12", big, env)["open_to_differential"] for _ in range(args.runs)]
        print(f"12 MP JPEG open-to-differential, model loaded (app, draft decode)  {_median(o12)}   target <= 400 ms")
        from engine.imageio import DISPLAY_MAX_SIDE, load_image

        for label, side in (("full decode", None), (f"draft, max_side={DISPLAY_MAX_SIDE}", DISPLAY_MAX_SIDE)):
            ts = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                load_image(big, max_side=side)
                ts.append(time.perf_counter() - t0)
            print(f"  12 MP JPEG decode, {label:<24} {_median(ts)}")
    print(f"after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
