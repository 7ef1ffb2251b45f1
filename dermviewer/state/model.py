"""The loaded model as the app sees it: one Predictor, its bundle's facts, and a torch module for explanations.

Loading takes seconds (torch import, weight assignment), so :meth:`ModelHost.load` is meant to run in a
worker; everything else reads what it left behind. An ONNX file is opened with the
configuration it embeds (``engine.inference.onnx_predictor``); Grad-CAM then needs the torch bundle.

:func:`shipped_models` lists the bundles in ``resources/models`` for the Model menu and ``--model <stem>``;
it reads only each file's JSON header, so listing stays instant however large the weights are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bundle import BUNDLE_SUFFIX, Bundle, load_bundle, read_bundle_header
from engine.errors import BundleError
from engine.inference import Predictor, onnx_predictor

__all__ = ["LAZY_MODULES", "ONNX_MODULES", "ModelHost", "ModelInfo", "ShippedModel", "file_sha256", "model_card_text",
           "preload_model_imports", "resolve_model_choice", "shipped_models", "uses_onnx"]

_log = logging.getLogger(__name__)

# Modules the engine imports lazily inside functions. A GUI must import them on its UI thread before a
# worker loads a model: PySide6's import hook is not thread-safe, and a first import inside a worker
# thread can corrupt reference counts and crash the app (seen as "deallocating None" while torch/timm
# import in a QRunnable).
LAZY_MODULES = ("torch", "timm", "safetensors.torch", "engine.models.dermimitformer", "engine.models.classifier",
                "engine.explain", "pytorch_grad_cam")
ONNX_MODULES = ("onnx", "onnxruntime", "engine.backends.onnx_backend", "engine.export")


def uses_onnx(path: str | Path, backend: str) -> bool:
    """Whether loading ``path`` with ``backend`` runs ONNX Runtime (an ``.onnx`` file always does)."""
    return Path(path).suffix.lower() == ".onnx" or backend == "onnx"


def preload_model_imports(path: str | Path, backend: str = "torch") -> None:
    """Import, on the calling thread, every module that :meth:`ModelHost.load` of ``path`` imports lazily.

    A missing optional extra is skipped here: the load itself then fails with its own message.
    """
    import contextlib
    import importlib

    for name in LAZY_MODULES + (ONNX_MODULES if uses_onnx(path, backend) else ()):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)

DEFAULT_STEM = "default"
# Menu wording for the bundles we ship on purpose; any other bundle dropped in the folder shows its stem.
_KNOWN_LABELS = {DEFAULT_STEM: "Default", "student": "Student, faster"}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (a ViT-B bundle is 400 MB); ``""`` when it cannot be read."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def model_card_text(bundle: Bundle) -> str | None:
    """The markdown model card shipped as ``resources/models/<name>.md`` or beside the bundle file."""
    candidates = []
    try:
        import resources

        candidates.append(resources.resource_path("models", f"{bundle.name}.md"))
    except ImportError:
        pass
    if bundle.path is not None:
        candidates += [bundle.path.with_suffix(".md"), bundle.path.parent / f"{bundle.name}.md"]
    for c in candidates:
        if c.is_file():
            return c.read_text(encoding="utf-8")
    return None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    path: str
    untrained: bool
    device: str
    backend: str
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    heads: dict[str, list[str]] = field(default_factory=dict)
    card: str | None = None
    sha256: str = ""  # of the model file as it lies on disk (what `sha256sum FILE` prints)

    @property
    def title(self) -> str:
        return f"{self.name} v{self.version}"

    def headline_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        """Flat (name, value) pairs of the top-level numeric metrics, for the report and status bar."""
        out = []
        for key, v in self.metrics.items():
            # "cv.disease_fused.macro_f1" -> "CV (out of fold) disease macro f1"
            k = ("CV (out of fold) " if key.startswith("cv.") else "") + key.removeprefix("cv.").replace(
                "disease_fused.", "disease ").replace(".", " ").replace("_", " ")
            if isinstance(v, float) and 0.0 <= v <= 1.0:
                out.append((k, f"{100 * v:.1f}%"))
            elif isinstance(v, int | float) and not isinstance(v, bool):
                out.append((k, f"{v:.3f}" if isinstance(v, float) else str(v)))
            elif isinstance(v, dict) and {"mean", "std"} <= set(v):
                out.append((k, f"{float(v['mean']):.3f} ± {float(v['std']):.3f}"))
        return out[:limit]

    @classmethod
    def from_predictor(cls, predictor: Predictor, sha256: str = "") -> ModelInfo:
        b = predictor.bundle
        return cls(
            sha256=sha256,
            name=b.name,
            version=b.version,
            path=str(b.path or ""),
            untrained=b.untrained,
            device=str(predictor.device),
            backend=predictor.backend_name,
            metrics=dict(b.metrics),
            provenance=dict(b.provenance),
            heads={h: [c.name for c in spec.classes] for h, spec in b.taxonomy.heads.items()},
            card=model_card_text(b),
        )


class ModelHost:
    """Owns the Predictor; thread-safe lazy access so queued jobs wait for a model being loaded."""

    def __init__(self, ort_threads: int = 0) -> None:
        self._lock = threading.RLock()
        self._predictor: Predictor | None = None
        self._explain_model: Any = None
        self.info: ModelInfo | None = None
        self.ort_threads = ort_threads  # ONNX Runtime intra-op threads per session; 0 lets it take every core

    @property
    def ready(self) -> bool:
        return self._predictor is not None

    def load(self, path: str | Path, device: str = "auto", backend: str = "torch") -> ModelInfo:
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            predictor = onnx_predictor(path, device=device, onnx_threads=self.ort_threads)
        else:
            predictor = Predictor(load_bundle(path), device=device, backend=backend, onnx_threads=self.ort_threads)
        info = ModelInfo.from_predictor(predictor, sha256=file_sha256(path))
        with self._lock:
            self._predictor, self._explain_model, self.info = predictor, None, info
        return info

    @property
    def predictor(self) -> Predictor:
        with self._lock:
            if self._predictor is None:
                raise BundleError("no model is loaded yet")
            return self._predictor

    def explain_model(self) -> Any:
        """A torch module for Grad-CAM, separate from the predictor's: Grad-CAM hooks and backward passes
        must not see forwards that other threads run on the predictor (and ONNX Runtime has no gradients)."""
        with self._lock:
            p = self.predictor
            if self._explain_model is None:
                if not p.bundle.state_dict:
                    raise BundleError("Grad-CAM needs the torch weights; open the .dmvb bundle of this ONNX model",
                                      p.bundle.path)
                self._explain_model = p.bundle.build_model(p.device if p.backend_name == "torch" else "cpu")
            return self._explain_model


@dataclass(frozen=True)
class ShippedModel:
    """A bundle in ``resources/models``: its file, the stem ``--model`` accepts, and its menu label."""

    path: Path
    stem: str
    name: str
    label: str


def _models_dir() -> Path:
    import resources

    return resources.resource_path("models")


def shipped_models() -> list[ShippedModel]:
    """The bundles shipped with the app: default, student, then any others by stem.

    A bundle whose header cannot be read is left out (and logged): one broken file must not take the
    Model menu or the command line down with it. Loading it by path still reports the full reason.
    """
    folder = _models_dir()
    if not folder.is_dir():
        return []
    found = []
    order = list(_KNOWN_LABELS)
    for path in sorted(folder.glob(f"*{BUNDLE_SUFFIX}"),
                       key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem)):
        try:
            bundle = read_bundle_header(path)
        except BundleError as exc:
            _log.warning("skipping bundled model: %s", exc)
            continue
        prefix = _KNOWN_LABELS.get(path.stem)
        label = f"{prefix} — {bundle.name}" if prefix else path.stem
        found.append(ShippedModel(path=path, stem=path.stem, name=bundle.name, label=label))
    return found


def resolve_model_choice(value: str | Path) -> Path:
    """What ``--model`` names: an existing file, else the stem of a shipped bundle (``student``).

    Raises :class:`BundleError` naming the value and the shipped stems when it is neither.
    """
    path = Path(value)
    if path.is_file():
        return path
    models = shipped_models()
    for m in models:
        if m.stem == str(value):
            return m.path
    names = ", ".join(m.stem for m in models) or "none found"
    raise BundleError(f"{str(value)!r} is neither a model file nor a bundled model name (bundled: {names})")
