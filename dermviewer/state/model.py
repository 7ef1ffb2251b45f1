"""The loaded model as the app sees it: one Predictor, its bundle's facts, and a torch module for explanations.

Loading takes seconds (torch import, weight assignment), so :meth:`ModelHost.load` is meant to run in a
worker; everything else reads what it left behind. An ONNX file is opened with the
configuration it embeds (``engine.export.onnx_predictor``); Grad-CAM then needs the torch bundle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bundle import Bundle, load_bundle
from engine.errors import BundleError
from engine.inference import Predictor

__all__ = ["ModelHost", "ModelInfo", "model_card_text"]


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
    def from_predictor(cls, predictor: Predictor) -> ModelInfo:
        b = predictor.bundle
        return cls(
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

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._predictor: Predictor | None = None
        self._explain_model: Any = None
        self.info: ModelInfo | None = None

    @property
    def ready(self) -> bool:
        return self._predictor is not None

    def load(self, path: str | Path, device: str = "auto", backend: str = "torch") -> ModelInfo:
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            from engine.export import onnx_predictor

            predictor = onnx_predictor(path, device=device)
        else:
            predictor = Predictor(load_bundle(path), device=device, backend=backend)
        info = ModelInfo.from_predictor(predictor)
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
