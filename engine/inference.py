"""``Predictor``: a bundle + a device + a backend -> :class:`~engine.prediction.Prediction` per photo.

Backends (one module per runtime in :mod:`engine.backends`) share one preprocessing function and
return the same named numpy outputs, so the torch path and the ONNX Runtime path are interchangeable
behind ``predict``.

The ONNX Runtime path imports no torch: ``Predictor(path, backend="onnx")`` reads only the bundle's header
and runs the graph from the ONNX cache (:mod:`engine.onnx_cache`, built once per bundle checksum, in a
subprocess when ``onnx_build="subprocess"``). torch is imported by the torch backend, by
:func:`resolve_device`, and by an in-memory export for a :class:`Bundle` that has no file. This module
imports ``engine.export`` only for that export; ``engine.export`` never imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.backends import Backend
from engine.bundle import BUNDLE_SUFFIX, Bundle, load_bundle, read_bundle_header
from engine.context import ClinicalContext, ContextEncoding
from engine.errors import DermViewerError, ModelConfigError
from engine.imageio import load_image
from engine.prediction import Prediction, decode_outputs, merge_hflip_outputs
from engine.preprocess import preprocess_batch

if TYPE_CHECKING:
    import torch

    from engine.backends.torch_backend import TorchBackend

__all__ = ["Backend", "PredictProgress", "Predictor", "TorchBackend", "onnx_predictor", "resolve_device"]


def __getattr__(name: str) -> Any:
    if name == "TorchBackend":  # re-exported as before, without importing torch with this module
        from engine.backends.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module 'engine.inference' has no attribute {name!r}")


def _check_device_name(device: str) -> None:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ModelConfigError(f"device must be auto, cpu or cuda, got {device!r}")


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ModelConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


@dataclass(frozen=True)
class PredictProgress:
    """One step of :meth:`Predictor.iter_predict`: ``done`` of ``total`` photos, and this photo's result."""

    done: int
    total: int
    source: Any
    prediction: Prediction | None
    error: DermViewerError | None


class Predictor:
    def __init__(self, bundle: Bundle | str | Path, device: str = "auto", backend: str = "torch",
                 onnx_threads: int = 0, onnx_build: str = "inprocess", cache_dir: Path | None = None) -> None:
        """``onnx_threads``: ONNX Runtime's intra-op threads (0: every core), for apps that budget them.

        With ``backend="onnx"`` and a bundle *file* (a path, or a :class:`Bundle` read from one) the graph
        comes from the ONNX cache in ``cache_dir`` (default: the user's cache folder) and torch is not
        imported unless the entry has to be built: ``onnx_build`` is "inprocess" or "subprocess" (the app:
        torch stays out of its process). ``file_sha256`` is then the bundle file's checksum.
        """
        if backend not in ("torch", "onnx"):
            raise ModelConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.backend_name = backend
        self.backend: Backend
        self.device: Any
        self.file_sha256 = ""
        if backend == "torch":
            self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
            self.device = resolve_device(device)
            from engine.backends.torch_backend import TorchBackend

            self.backend = TorchBackend(self.bundle, self.device)
            return
        _check_device_name(device)
        path = Path(bundle) if not isinstance(bundle, Bundle) else bundle.path
        if path is not None and path.suffix.lower() == BUNDLE_SUFFIX and not _has_sibling_onnx(bundle):
            from engine.backends.onnx_backend import OnnxBackend
            from engine.onnx_cache import cached_onnx

            header = bundle if isinstance(bundle, Bundle) else read_bundle_header(path)
            _, entry = cached_onnx(path, cache_dir, subprocess_build=onnx_build == "subprocess", bundle=header)
            self.bundle, self.file_sha256 = header, entry.bundle_sha256
            self.backend = OnnxBackend.from_trusted(entry.blob, header, device, onnx_threads, entry.path,
                                                    cpu_optimized=entry.cpu_optimized)
        else:
            if isinstance(bundle, Bundle):  # a header-only bundle gets its weights: the export needs them
                self.bundle = bundle if bundle.state_dict or bundle.path is None else load_bundle(bundle.path)
            else:
                self.bundle = load_bundle(bundle)
            self.backend = _onnx_backend_for(self.bundle, device, onnx_threads)
        self.device = getattr(self.backend, "device", "cpu")

    @classmethod
    def from_backend(cls, bundle: Bundle, backend: Backend, device: Any = "cpu") -> Predictor:
        """A predictor around an already-built backend, e.g. an ONNX file that carries its own config."""
        self = cls.__new__(cls)
        self.bundle, self.backend, self.backend_name = bundle, backend, backend.name
        self.device = device
        self.file_sha256 = ""
        return self

    @property
    def model(self) -> torch.nn.Module:
        """The torch module (only for the torch backend; explanations need it)."""
        if self.backend_name != "torch":
            raise ModelConfigError("this predictor runs ONNX Runtime; build a torch Predictor for explanations")
        module: torch.nn.Module = self.backend.model  # type: ignore[attr-defined]
        return module

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.bundle.model_config.grid_size

    @property
    def context_encoding(self) -> ContextEncoding | None:
        """How this model takes the clinical context, or ``None`` for a photo-only model."""
        return self.bundle.model_config.context_encoding()

    def predict(self, image: np.ndarray | str | Path, context: ClinicalContext | None = None) -> Prediction:
        return self.predict_batch([image], None if context is None else [context])[0]

    def predict_batch(self, images: Sequence[np.ndarray | str | Path],
                      contexts: Sequence[ClinicalContext | None] | None = None) -> list[Prediction]:
        """``contexts`` (one per photo, ``None`` = not known) is used by context models, ignored otherwise."""
        t0 = time.perf_counter()
        arrays = [load_image(im) if isinstance(im, str | Path) else im for im in images]
        t1 = time.perf_counter()
        batch = preprocess_batch(arrays, self.bundle.preprocess)
        enc = self.context_encoding
        used: list[tuple[str, ...]] = [()] * len(arrays)
        ctx_batch = None
        if enc is not None and contexts is not None:
            if len(contexts) != len(arrays):
                raise ValueError(f"{len(contexts)} contexts for {len(arrays)} photos")
            ctx_batch = enc.encode_many(list(contexts))
            used = [tuple(f for f in enc.fields if c is not None and getattr(c, f) is not None) for c in contexts]
        t2 = time.perf_counter()
        if self.bundle.preprocess.tta_hflip:  # the flip TTA the model was cross-validated with
            both = np.concatenate([batch, np.ascontiguousarray(batch[..., ::-1])])
            ctx2 = None if ctx_batch is None else np.concatenate([ctx_batch, ctx_batch])
            outputs = merge_hflip_outputs(self.backend.run(both, ctx2), len(batch), self.bundle.taxonomy)
        else:
            outputs = self.backend.run(batch, ctx_batch)
        t3 = time.perf_counter()
        preds = []
        n = len(arrays)
        for i, arr in enumerate(arrays):
            p = decode_outputs(outputs, i, self.bundle.taxonomy, self.bundle.thresholds, self.grid_size)
            p.image_size = (int(arr.shape[0]), int(arr.shape[1]))
            p.context_used = used[i]
            p.timings_ms = {
                "load": (t1 - t0) * 1e3 / n,
                "preprocess": (t2 - t1) * 1e3 / n,
                "inference": (t3 - t2) * 1e3 / n,
                "total": (time.perf_counter() - t0) * 1e3 / n,
            }
            preds.append(p)
        return preds

    def iter_predict(
        self, sources: Iterable[np.ndarray | str | Path], batch_size: int = 1,
        context_for: Callable[[Any], ClinicalContext | None] | None = None,
    ) -> Iterator[PredictProgress]:
        """Predict many photos, yielding after each batch so callers can show progress or cancel.

        A photo that cannot be read yields an error for that photo and the rest carry on.
        ``context_for(source)`` gives a photo's clinical context (context models only).
        """
        items = list(sources)
        total, done = len(items), 0
        pending: list[tuple[Any, np.ndarray]] = []

        def flush() -> Iterator[PredictProgress]:
            nonlocal done
            if not pending:
                return
            ctxs = [context_for(src) for src, _ in pending] if context_for is not None else None
            preds = self.predict_batch([a for _, a in pending], ctxs)
            for (src, _), p in zip(pending, preds, strict=True):
                done += 1
                yield PredictProgress(done, total, src, p, None)
            pending.clear()

        for src in items:
            try:
                arr = load_image(src) if isinstance(src, str | Path) else src
            except DermViewerError as exc:
                yield from flush()
                done += 1
                yield PredictProgress(done, total, src, None, exc)
                continue
            pending.append((src, arr))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()


def _has_sibling_onnx(bundle: Bundle | str | Path) -> bool:
    """An ``.onnx`` exported beside the bundle file is used instead of the cache, after it is checked
    against the bundle's weights (which needs them, hence torch: a stale sibling is refused, not run)."""
    path = bundle.path if isinstance(bundle, Bundle) else Path(bundle)
    return path is not None and path.with_suffix(".onnx").is_file()


def _onnx_backend_for(bundle: Bundle, device: Any, threads: int = 0) -> Backend:
    from engine.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend.from_bundle_file(bundle, device=device, intra_op_threads=threads)
    if backend is None:  # no .onnx file with this bundle: export its weights in memory
        from engine.export.onnx_export import export_onnx_bytes

        backend = OnnxBackend(export_onnx_bytes(bundle), device, intra_op_threads=threads)
    return backend


def onnx_predictor(path: str | Path, device: str = "auto", onnx_threads: int = 0) -> Predictor:
    """A :class:`Predictor` for a DermViewer ``.onnx`` file alone (no bundle, no torch weights)."""
    from engine.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend(path, device, intra_op_threads=onnx_threads)
    return Predictor.from_backend(backend.bundle, backend, device=backend.device)
