"""Create the QApplication and the review window, open the model and the photos given on the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from dermviewer.qt.main_window import MainWindow
from dermviewer.state.app_state import AppState
from dermviewer.state.model import resolve_model_choice
from dermviewer.state.settings import Settings

__all__ = ["create_window", "preload_lazy_imports", "run"]

# Modules the engine imports lazily inside functions. They must be imported on the UI thread: PySide6's
# import hook is not thread-safe, and a first import inside a worker thread can corrupt reference
# counts and crash the app (seen as "deallocating None" while torch/timm import in a QRunnable).
LAZY_MODULES = ("torch", "timm", "safetensors.torch", "engine.models.dermimitformer", "engine.models.classifier",
                "engine.explain", "pytorch_grad_cam")
ONNX_MODULES = ("onnx", "onnxruntime", "engine.export")


def preload_lazy_imports(onnx: bool = False) -> None:
    import contextlib
    import importlib

    for name in LAZY_MODULES + (ONNX_MODULES if onnx else ()):
        with contextlib.suppress(ImportError):  # a missing optional extra fails later, with its own message
            importlib.import_module(name)


def create_window(photos: Sequence[str | Path] = (), model: str | Path | None = None,
                  settings: Settings | None = None) -> MainWindow:
    """A ready window: the model starts loading in a worker and the photos are queued behind it.

    ``model`` is a file or a bundled model's name (``"student"``); an unknown one raises ``BundleError``.
    A remembered model that has since disappeared falls back to the default bundle.
    """
    import resources

    state = AppState(settings if settings is not None else Settings.load())
    model_path = resolve_model_choice(model) if model else state.settings.model_path
    if not model_path or not Path(model_path).exists():
        model_path = resources.default_model_path()
    preload_lazy_imports(onnx=state.settings.backend == "onnx" or str(model_path).endswith(".onnx"))
    win = MainWindow(state)
    win.controller.load_model(model_path)
    if photos:
        win.controller.open_paths([Path(p) for p in photos])
    return win


def run(photos: Sequence[str] = (), model: str | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DermViewer")
    app.setOrganizationName("DermViewer")
    app.setStyle("Fusion")
    win = create_window(photos, model)
    win.show()
    return int(app.exec())
