"""The loaded model as the app sees it: one Predictor, its bundle's facts, and a torch module for explanations.

Loading takes seconds (torch import, weight assignment), so :meth:`ModelHost.load` is meant to run in a
worker; everything else reads what it left behind. An ONNX file is opened with the bundle of the same
name beside it, because the ONNX graph carries weights but not the taxonomy and preprocessing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bundle import Bundle, load_bundle
from engine.errors import BundleError
from engine.inference import Predictor

__all__ = ["ModelHost", "ModelInfo", "model_card_text", "resolve_model_path"]


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


def resolve_model_path(path: str | Path) -> tuple[Path, str | None]:
    """``(bundle path, forced backend)``: an ``.onnx`` file means its sibling ``.dmvb`` run with ONNX Runtime."""
    p = Path(path)
    if p.suffix.lower() != ".onnx":
        return p, None
    for cand in (p.with_suffix(".dmvb"), *sorted(p.parent.glob("*.dmvb"))):
        if cand.is_file():
            return cand, "onnx"
    raise BundleError("an ONNX file needs its .dmvb bundle (taxonomy, preprocessing) in the same folder", p)


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
        for k, v in self.metrics.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
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
        bundle_path, forced = resolve_model_path(path)
        bundle = load_bundle(bundle_path)
        predictor = Predictor(bundle, device=device, backend=forced or backend)
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
        """The torch module for Grad-CAM; built on the CPU once when the predictor runs ONNX Runtime."""
        with self._lock:
            p = self.predictor
            if p.backend_name == "torch":
                return p.model
            if self._explain_model is None:
                self._explain_model = p.bundle.build_model("cpu")
            return self._explain_model
