"""Does the ONNX model say what the torch model says? Probabilities within a tolerance, same top-1.

Compared per output: probabilities (softmax or sigmoid, as the taxonomy says) for logits, raw values
for LSM scores and the embedding, set equality for the selected tokens (near-ties may swap order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.backends.onnx_backend import OnnxBackend
from engine.bundle import Bundle, load_bundle
from engine.imageio import load_image
from engine.prediction import softmax
from engine.preprocess import preprocess_batch
from engine.taxonomy import Taxonomy

__all__ = ["ParityReport", "check_parity", "preprocessed_batches", "probabilities", "run_all", "top1_agreement"]

_LOGITS = ("disease", "disease_fused", "body_part", "attributes")


@dataclass
class ParityReport:
    n_images: int
    tolerance: float
    max_prob_diff: dict[str, float] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    top1_agreement: float = 1.0
    selected_agreement: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """All probabilities within tolerance and the same top-1 diagnosis for every photo."""
        return self.top1_agreement == 1.0 and all(v <= self.tolerance for v in self.max_prob_diff.values())

    def summary(self) -> str:
        probs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_prob_diff.items())
        return (f"{'OK' if self.ok else 'FAILED'}: {self.n_images} photos, top-1 agreement {self.top1_agreement:.1%}, "
                f"max |Δp| {probs} (tolerance {self.tolerance:g})")


def probabilities(outputs: dict[str, np.ndarray], taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """Logit outputs -> probabilities: softmax for single-label heads, sigmoid for multi-label ones."""
    probs = {}
    for k in _LOGITS:
        if k not in outputs:
            continue
        head = "disease" if k.startswith("disease") else k
        logits = outputs[k].astype(np.float64)
        multi = head in taxonomy.heads and taxonomy.head(head).multi_label
        probs[k] = 1.0 / (1.0 + np.exp(-logits)) if multi else softmax(logits, axis=-1)
    return probs


def top1_agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray], output: str = "disease_fused") -> float:
    return float(np.mean(a[output].argmax(-1) == b[output].argmax(-1)))


def preprocessed_batches(images: Sequence[np.ndarray | str | Path], bundle: Bundle, size: int = 8) -> list[np.ndarray]:
    """Photos (arrays or paths) -> model-ready float32 batches of at most ``size``, with the bundle's preprocessing."""
    arrays = [load_image(im) if isinstance(im, str | Path) else im for im in images]
    return [preprocess_batch(arrays[i : i + size], bundle.preprocess) for i in range(0, len(arrays), size)]


def run_all(run: Callable[[np.ndarray], dict[str, np.ndarray]], batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Run every batch and concatenate each output along the batch axis."""
    outs = [run(b) for b in batches]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def check_parity(
    bundle: Bundle | str | Path,
    onnx_model: str | Path | bytes | OnnxBackend,
    images: Sequence[np.ndarray | str | Path],
    tolerance: float = 1e-4,
    batch_size: int = 8,
) -> ParityReport:
    """Run the bundle in torch (fp32) and the ONNX model in ONNX Runtime on the same photos and compare."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if not images:
        raise ValueError("parity needs at least one photo")
    backend = onnx_model if isinstance(onnx_model, OnnxBackend) else OnnxBackend(onnx_model, "cpu")
    model = bundle.build_model("cpu")

    @torch.inference_mode()
    def torch_run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in model(torch.from_numpy(batch)).items()}

    batches = preprocessed_batches(images, bundle, batch_size)
    ref, got = run_all(torch_run, batches), run_all(backend.run, batches)
    report = ParityReport(n_images=len(images), tolerance=tolerance)
    p_ref, p_got = probabilities(ref, bundle.taxonomy), probabilities(got, bundle.taxonomy)
    for k in p_ref:
        report.max_prob_diff[k] = float(np.abs(p_ref[k] - p_got[k]).max())
    for k in ref:
        if k.startswith("selected_"):
            same = [set(a.tolist()) == set(b.tolist()) for a, b in zip(ref[k], got[k], strict=True)]
            report.selected_agreement[k.removeprefix("selected_")] = float(np.mean(same))
        elif k not in p_ref:
            report.max_abs_diff[k] = float(np.abs(ref[k].astype(np.float64) - got[k]).max())
    report.top1_agreement = top1_agreement(ref, got)
    return report
