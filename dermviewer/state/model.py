"""The loaded model as the app sees it: one Predictor, its bundle's facts, and a torch module for explanations.

With the ONNX Runtime backend (the default) loading a bundle reads its header and runs the graph from the
ONNX cache (``engine.onnx_cache``; built once per bundle checksum in a subprocess), so the app's process
does not import torch to show a differential. Grad-CAM needs torch: :meth:`ModelHost.load_explainer`
imports it and builds the torch module, and the coordinator runs it in the background once the first
differential is on screen; :attr:`ModelHost.explainer_ready` says when it is done. With the torch
backend the predictor's own import makes it ready at once. :meth:`ModelHost.load` is meant to run in a
worker; everything else reads what it left behind. An ONNX file is opened with the configuration it
embeds (``engine.inference.onnx_predictor``); Grad-CAM then needs the torch bundle.

:func:`shipped_models` lists the bundles in ``resources/models`` for the Model menu and ``--model <stem>``;
it reads only each file's JSON header, so listing stays instant however large the weights are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermviewer.state.events import Signal
from engine.bundle import BUNDLE_SUFFIX, Bundle, load_bundle, read_bundle_header
from engine.bundle import file_sha256 as _engine_file_sha256
from engine.errors import BundleError
from engine.inference import Predictor, onnx_predictor

__all__ = ["EXPLAIN_MODULES", "LAZY_MODULES", "ONNX_MODULES", "PREFETCH_MODULES",
           "ModelHost", "ModelInfo", "ShippedModel", "file_sha256", "model_card_text", "prefetch_explain_imports",
           "preload_model_imports", "resolve_model_choice", "shipped_models", "uses_onnx"]

_log = logging.getLogger(__name__)

# Modules the engine imports lazily inside functions. A GUI must import them on its UI thread before a
# worker loads a model: PySide6's import hook is not thread-safe, and a first import inside a worker
# thread can corrupt reference counts and crash the app (seen as "deallocating None" while torch/timm
# import in a QRunnable).
# The ONNX Runtime path imports only ONNX_MODULES (no torch, no onnx package: cache entries are verified by
# checksum); EXPLAIN_MODULES are imported by :meth:`ModelHost.load_explainer` in the background, which has
# held up in tests/dermviewer/qt/test_startup_gradcam.py (torch, timm and pytorch_grad_cam imported on a
# plain thread while the event loop runs).
LAZY_MODULES = ("torch", "timm", "safetensors.torch", "engine.models.dermimitformer", "engine.models.classifier",
                "engine.explain", "pytorch_grad_cam")
EXPLAIN_MODULES = LAZY_MODULES
# What the Grad-CAM path imports that is not torch: pytorch_grad_cam's scikit-learn (for its KPCA-CAM), SciPy
# and pyplot, and what torch itself pulls in on import, SymPy (torch.fx's symbolic shapes) and Triton (where
# installed, read by torch._dynamo). None of them imports torch, so the app may import them while the first
# differential is computed (ONNX Runtime releases the GIL), leaving only torch, torchvision and timm for after
# it (:func:`prefetch_explain_imports`, issue 14).
PREFETCH_MODULES = ("scipy.ndimage", "sklearn.decomposition", "matplotlib.pyplot", "matplotlib.lines", "sympy",
                    "triton")

_prefetch_lock = threading.Lock()
_prefetch_thread: threading.Thread | None = None


def _use_agg_for_pyplot() -> None:
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        # pytorch_grad_cam imports pyplot; on a worker thread, with Qt loaded, pyplot would pick a Qt backend
        # and touch the application from outside the UI thread (a fresh clone's suite aborted in the event loop
        # while this ran). The app's plots embed matplotlib's Qt canvas directly.
        import matplotlib

        matplotlib.use("Agg")


def _prefetch() -> None:
    import contextlib
    import importlib

    _use_agg_for_pyplot()
    for name in PREFETCH_MODULES:
        # only a head start: a module that fails here fails again in load_explainer, which reports it
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def prefetch_explain_imports() -> threading.Thread:
    """Start importing :data:`PREFETCH_MODULES` on a plain thread, once per process; returns that thread.

    A plain ``threading.Thread``, as :meth:`ModelHost.load_explainer` uses (not a Qt worker: see
    :data:`LAZY_MODULES`). :meth:`ModelHost.load_explainer` joins it before importing torch, so the two
    import graphs never interleave."""
    global _prefetch_thread
    with _prefetch_lock:
        if _prefetch_thread is None:
            _prefetch_thread = threading.Thread(target=_prefetch, name="dermviewer-prefetch-imports", daemon=False)
            _prefetch_thread.start()
        return _prefetch_thread


def _join_prefetch() -> None:
    with _prefetch_lock:
        t = _prefetch_thread
    if t is not None:
        t.join()
ONNX_MODULES = ("onnxruntime", "engine.backends.onnx_backend", "engine.onnx_cache")
_ONNX_FILE_MODULES = ("onnx", "engine.export")  # an .onnx file is validated by read_onnx (onnx, torch)


def uses_onnx(path: str | Path, backend: str) -> bool:
    """Whether loading ``path`` with ``backend`` runs ONNX Runtime (an ``.onnx`` file always does)."""
    return Path(path).suffix.lower() == ".onnx" or backend == "onnx"


def preload_model_imports(path: str | Path, backend: str = "torch") -> None:
    """Import, on the calling thread, every module that :meth:`ModelHost.load` of ``path`` imports lazily.

    A missing optional extra is skipped here: the load itself then fails with its own message.
    """
    import contextlib
    import importlib

    names: tuple[str, ...]
    if Path(path).suffix.lower() == ".onnx":
        names = LAZY_MODULES + ONNX_MODULES + _ONNX_FILE_MODULES
    elif backend == "onnx":
        names = ONNX_MODULES  # torch comes later, in the background (ModelHost.load_explainer)
    else:
        names = LAZY_MODULES
    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)

DEFAULT_STEM = "default"
# Menu wording for the bundles we ship on purpose; any other bundle dropped in the folder shows its stem.
_KNOWN_LABELS = {DEFAULT_STEM: "Default", "student": "Student, faster"}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (a ViT-B bundle is 400 MB); ``""`` when it cannot be read."""
    try:
        return _engine_file_sha256(path, chunk)
    except BundleError:
        return ""


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


@dataclass(frozen=True)
class LoadedModel:
    """A model read by :meth:`ModelHost.prepare`, not yet the loaded one."""

    predictor: Predictor
    info: ModelInfo

    @property
    def path(self) -> str:
        return self.info.path


class ModelHost:
    """Owns the Predictor; thread-safe lazy access so queued jobs wait for a model being loaded."""

    def __init__(self, ort_threads: int = 0, torch_threads: int = 0) -> None:
        self._lock = threading.RLock()
        self._predictor: Predictor | None = None
        self._explain_model: Any = None
        self.info: ModelInfo | None = None
        self.ort_threads = ort_threads  # ONNX Runtime intra-op threads per session; 0 lets it take every core
        self.torch_threads = torch_threads  # set on torch when it is first imported (0: torch's default)
        self.onnx_build = "subprocess"  # how a missing ONNX cache entry is built: torch stays out of the app
        self.explainer_changed = Signal()  # explainer_ready changed (emitted by whoever calls load_explainer)
        self.explainer_error: str | None = None  # why the background load failed, for the model loaded now

    @property
    def ready(self) -> bool:
        return self._predictor is not None

    @property
    def can_explain(self) -> bool:
        """Whether Grad-CAM is possible at all: the torch weights are at hand (an ``.onnx`` file has none)."""
        with self._lock:
            p = self._predictor
        if p is None or self.explainer_error is not None:
            return False
        b = p.bundle
        return p.backend_name == "torch" or bool(b.state_dict) or (
            b.path is not None and b.path.suffix.lower() == BUNDLE_SUFFIX)

    @property
    def explainer_ready(self) -> bool:
        """Whether Grad-CAM can run now, without importing torch first."""
        with self._lock:
            return self._predictor is not None and (self._explain_model is not None
                                                    or self._predictor.backend_name == "torch")

    def load(self, path: str | Path, device: str = "auto", backend: str = "torch") -> ModelInfo:
        """:meth:`prepare` and :meth:`adopt` in one call, for code that has no UI thread to hand over to."""
        return self.adopt(self.prepare(path, device, backend))

    def prepare(self, path: str | Path, device: str = "auto", backend: str = "torch") -> LoadedModel:
        """Read and verify a model without making it the loaded one (seconds; any thread).

        The app adopts it on the UI thread, in the same step that makes earlier results stale, so no job can
        start on the new model and then be dropped as belonging to the old one."""
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            predictor = onnx_predictor(path, device=device, onnx_threads=self.ort_threads)
        elif backend == "onnx":
            predictor = Predictor(path, device=device, backend="onnx", onnx_threads=self.ort_threads,
                                  onnx_build=self.onnx_build)
        else:
            predictor = Predictor(load_bundle(path), device=device, backend=backend, onnx_threads=self.ort_threads)
            self._set_torch_threads()
        info = ModelInfo.from_predictor(predictor, sha256=predictor.file_sha256 or file_sha256(path))
        return LoadedModel(predictor, info)

    def adopt(self, loaded: LoadedModel) -> ModelInfo:
        """Make a prepared model the loaded one: :attr:`ready` turns true from here."""
        with self._lock:
            self._predictor, self._explain_model, self.info = loaded.predictor, None, loaded.info
            self.explainer_error = None
        return loaded.info

    def explainer_job(self) -> Generator[None, None, Predictor | None]:
        """:meth:`load_explainer` on a thread of its own, as a generator job for the coordinator's executor:
        each step waits 0.1 s for it, so the job holds a compute slot only that long at a time and the
        photos opened meanwhile are predicted while torch imports. Returns what ``load_explainer`` does."""
        done = threading.Event()
        result: list[Predictor] = []
        error: list[Exception] = []

        def work() -> None:
            try:
                result.append(self.load_explainer())
            except Exception as exc:  # noqa: BLE001 -- raised again on the job's own thread below
                error.append(exc)
            finally:
                done.set()

        # Not a daemon: Python joins it at exit. A daemon thread still building the model in torch when the
        # interpreter finalises is unwound through torch's C++ frames, and the process aborts ("terminate
        # called without an active exception", exit status 134, after a test run that had passed).
        threading.Thread(target=work, name="dermviewer-load-explainer", daemon=False).start()
        while not done.wait(0.1):
            yield None
        if error:
            raise error[0]
        return result[0] if result else None

    def load_explainer(self) -> Predictor:
        """Import torch and build the Grad-CAM module of the model loaded now (seconds; run in the background).

        Returns the predictor it was built for, so a caller can tell whether the model changed meanwhile."""
        with self._lock:
            p = self.predictor
        if p.backend_name != "torch":
            import importlib

            _join_prefetch()
            _use_agg_for_pyplot()
            for name in EXPLAIN_MODULES:
                importlib.import_module(name)
            self._set_torch_threads()
        self.explain_model(p)
        return p

    def _set_torch_threads(self) -> None:
        if self.torch_threads > 0:
            import torch

            torch.set_num_threads(self.torch_threads)  # process-wide, whichever thread sets it

    @property
    def predictor(self) -> Predictor:
        with self._lock:
            if self._predictor is None:
                raise BundleError("no model is loaded yet")
            return self._predictor

    def explain_model(self, for_predictor: Predictor | None = None) -> Any:
        """A torch module for Grad-CAM, separate from the predictor's: Grad-CAM hooks and backward passes
        must not see forwards that other threads run on the predictor (and ONNX Runtime has no gradients).

        A bundle read for ONNX Runtime has no weights in memory: they are loaded (and verified) here.
        ``for_predictor``: build only if that predictor is still the loaded one (else nothing is kept)."""
        with self._lock:
            p = self.predictor
            if for_predictor is not None and for_predictor is not p:
                return None
            if self._explain_model is not None:
                return self._explain_model
        bundle = p.bundle
        if not bundle.state_dict:
            if bundle.path is None or bundle.path.suffix.lower() != BUNDLE_SUFFIX:
                raise BundleError("Grad-CAM needs the torch weights; open the .dmvb bundle of this ONNX model",
                                  bundle.path)
            bundle = load_bundle(bundle.path)  # outside the lock: seconds, and predictions must not wait
        model = bundle.build_model(p.device if p.backend_name == "torch" else "cpu")
        with self._lock:
            if self._predictor is not p:  # another model was loaded meanwhile: keep nothing of this one
                return None if for_predictor is not None else model
            if self._explain_model is None:
                self._explain_model = model
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
