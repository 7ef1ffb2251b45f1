"""``dermviewer --self-test``: check an installed copy end to end, without a display or any data set.

It runs what a user's first minutes run, in one process: Qt starts (offscreen unless the caller chose a
platform), the bundled default model (or ``--model``) is read and verified, the shipped sample photo
(``resources/samples``, PAD-UFES-20) is predicted, its Grad-CAM is computed and drawn by the review window's
own canvas, and the pixels are checked to have changed. One line on stdout says what it saw; any failure
is one line on stderr naming the step and the reason, and a non-zero exit status (issue 16).

The torch backend is used: Grad-CAM needs torch anyway, and this keeps the check from writing an ONNX
cache entry into the user's cache folder.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SelfTestError", "SelfTestResult", "main", "run_self_test"]

MIN_CHANGED_FRACTION = 0.02
"""Share of the canvas's pixels the overlay must visibly change (a Grad-CAM at opacity 0.6 changes most)."""


class SelfTestError(Exception):
    """A step of the self-test failed; ``step`` says which, the message says why."""

    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, reason
        super().__init__(f"{step}: {reason}")


@dataclass(frozen=True)
class SelfTestResult:
    model_name: str
    model_file: str
    photo: str
    top_code: str
    top_probability: float
    overlay_changed: float  # fraction of canvas pixels the Grad-CAM overlay changed
    seconds: float

    def summary(self) -> str:
        return (f"dermviewer self-test OK: model {self.model_name} ({self.model_file}), photo {self.photo}: "
                f"top {self.top_code} {self.top_probability:.3f}, Grad-CAM overlay drawn "
                f"({self.overlay_changed:.0%} of pixels), {self.seconds:.1f} s")


@contextmanager
def _step(name: str) -> Iterator[None]:
    try:
        yield
    except SelfTestError:
        raise
    except Exception as exc:  # a self-test reports whatever broke (re-raised, so not blind), with its step
        raise SelfTestError(name, f"{type(exc).__name__}: {exc}") from exc


def _require(ok: bool, step: str, reason: str) -> None:
    if not ok:
        raise SelfTestError(step, reason)


def run_self_test(model: str | Path | None = None, photo: str | Path | None = None,
                  started: float | None = None) -> SelfTestResult:
    """Run every step; raises :class:`SelfTestError` at the first that fails. ``started``: a
    ``time.perf_counter()`` taken before the imports, so the seconds reported include them."""
    t0 = time.perf_counter() if started is None else started
    import resources

    with _step("starting Qt"):
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance() or QApplication(sys.argv[:1])
    with _step("loading the model"):
        from dermviewer.state.model import ModelHost

        model_path = Path(model) if model is not None else resources.default_model_path()
        host = ModelHost()
        info = host.load(model_path, device="cpu", backend="torch")
    photo_path = Path(photo) if photo is not None else resources.sample_photo_path()
    with _step("predicting the sample photo"):
        from engine.imageio import load_image

        rgb = load_image(photo_path)
        prediction = host.predictor.predict(rgb)
        probs = np.array([s.probability for s in prediction.differential])
    _require(bool(np.isfinite(probs).all()) and abs(float(probs.sum()) - 1.0) < 1e-3,
             "predicting the sample photo", f"probabilities are not a distribution: {probs.tolist()}")
    top = prediction.top
    codes = [c.code for c in host.predictor.bundle.taxonomy.head("disease").classes]
    with _step("computing Grad-CAM"):
        from dermviewer.state.overlays import OverlaySettings, gradcam_map

        layer = gradcam_map(host.explain_model(), host.predictor.bundle, rgb, "disease", codes.index(top.code))
    cam = np.asarray(layer.values)
    _require(cam.ndim == 2 and bool(np.isfinite(cam).all()) and float(cam.max() - cam.min()) > 1e-3,
             "computing Grad-CAM", f"the map is empty, constant or not finite (shape {cam.shape})")
    with _step("drawing the overlay"):
        from dermviewer.qt.canvas import ImageCanvas
        from dermviewer.qt.convert import image_pyramid

        canvas = ImageCanvas()
        canvas.resize(320, 320)
        canvas.set_photo(image_pyramid(rgb))
        canvas.show()
        app.processEvents()
        plain = canvas.grab_array().astype(np.int16)
        canvas.set_overlays([layer], OverlaySettings(lsm=False, tokens=False, gradcam=True, opacity=0.6))
        app.processEvents()
        drawn = canvas.grab_array().astype(np.int16)
        kinds = canvas.overlay_kinds()
        canvas.close()
        canvas.deleteLater()
    changed = float((np.abs(drawn - plain).max(axis=2) > 8).mean())
    _require(kinds == ["gradcam"] and changed >= MIN_CHANGED_FRACTION, "drawing the overlay",
             f"the Grad-CAM overlay changed {changed:.1%} of the canvas (items: {kinds}); "
             f"at least {MIN_CHANGED_FRACTION:.0%} expected")
    return SelfTestResult(info.title, model_path.name, photo_path.name, top.code, top.probability, changed,
                          time.perf_counter() - t0)


def main(model: str | Path | None = None, started: float | None = None) -> int:
    """Print the summary (exit 0) or why it failed (exit 1)."""
    try:
        result = run_self_test(model, started=started)
    except SelfTestError as exc:
        print(f"dermviewer self-test FAILED while {exc.step}: {exc.reason}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0
