"""Model bundles: one ``.dmvb`` file = safetensors weights + a JSON config in its header.

The config carries the model architecture, preprocessing, taxonomy, thresholds, metrics and
training provenance (timm's "pretrained cfg travels with the weights"), so preprocessing cannot
drift from the checkpoint. Loading never unpickles. A SHA-256 of the tensor bytes is stored in the
header, so a flipped byte in the weights is caught, not silently run.

torch is imported only by what needs the weights as tensors (:func:`load_bundle`, :meth:`Bundle.build_model`,
:func:`save_bundle`): :func:`read_bundle_header` and :func:`file_sha256` serve the ONNX Runtime prediction
path, which never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError, DermViewerError
from engine.models.config import BUILD_ERRORS, ModelConfig
from engine.preprocess import PreprocessConfig
from engine.taxonomy import Taxonomy

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "BUNDLE_SUFFIX",
    "SCHEMA_VERSION",
    "Bundle",
    "bundle_from_header",
    "file_sha256",
    "load_bundle",
    "read_bundle_header",
    "save_bundle",
]

SCHEMA_VERSION = 1
BUNDLE_SUFFIX = ".dmvb"
_META_KEY = "dermviewer_bundle"
_MAX_HEADER = 100 * 1024 * 1024


@dataclass
class Bundle:
    name: str
    version: str
    model_config: ModelConfig
    preprocess: PreprocessConfig
    taxonomy: Taxonomy
    state_dict: dict[str, torch.Tensor]  # empty when only the header was read (the ONNX Runtime path)
    thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def untrained(self) -> bool:
        return bool(self.provenance.get("untrained", False))

    def threshold(self, head: str) -> float:
        return float(self.thresholds.get(head, 0.5))

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """Build on the meta device and assign the stored tensors: one copy of the weights in memory."""
        import torch

        from engine.models.registry import build_model

        if not self.state_dict:
            raise BundleError("only the header of this bundle was read; load it with load_bundle for its weights",
                              self.path)
        cfg = self.model_config.replace(pretrained=False, checkpoint_path=None)
        try:
            with torch.device("meta"):
                model = build_model(cfg)
        except BUILD_ERRORS as exc:
            raise BundleError(f"the model config cannot be built: {exc!r:.300}", self.path) from exc
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise BundleError(f"weights do not match the architecture in the config: {exc}", self.path) from exc
        _materialise_buffers(model)
        return model.to(device).eval()

    def header(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "model": self.model_config.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "taxonomy": self.taxonomy.to_dict(),
            "thresholds": self.thresholds,
            "metrics": self.metrics,
            "provenance": self.provenance,
        }


def _materialise_buffers(model: nn.Module) -> None:
    """Non-persistent buffers are not in the state dict; anything still on meta is an error."""
    for name, buf in model.named_buffers():
        if buf.is_meta:
            raise BundleError(f"buffer {name} was not restored from the bundle")
    for name, p in model.named_parameters():
        if p.is_meta:
            raise BundleError(f"parameter {name} was not restored from the bundle")


def save_bundle(
    path: str | Path,
    model: nn.Module,
    *,
    model_config: ModelConfig,
    taxonomy: Taxonomy,
    preprocess: PreprocessConfig,
    name: str,
    version: str = "0",
    thresholds: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights and everything needed to use them; ``half`` stores floats as fp16."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        if half and t.is_floating_point():
            t = t.half()
        tensors[k] = t.clone()
    bundle = Bundle(name, version, model_config, preprocess, taxonomy, tensors,
                    thresholds or {}, metrics or {}, provenance or {})
    header = bundle.header()
    header["weights_sha256"] = _data_sha256(save(tensors, metadata={"x": "x"}))
    blob = save(tensors, metadata={_META_KEY: json.dumps(header)})
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)  # atomic: a crash never leaves half a bundle under the real name
    return path


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a whole file as it lies on disk (what ``sha256sum`` prints), read in chunks.

    The key of a bundle's ONNX cache entry: header and weights both, so any change to either is a new key.
    Raises :class:`BundleError` naming the file when it cannot be read.
    """
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}", Path(path)) from exc
    return h.hexdigest()


def _split(blob: bytes, path: Path | None) -> tuple[dict[str, Any], bytes]:
    if len(blob) < 8:
        raise BundleError("file is too short to be a bundle (truncated or empty)", path)
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise BundleError("header length is impossible: file truncated or not a bundle", path)
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"header is not valid JSON ({exc.__class__.__name__})", path) from exc
    if not isinstance(header, dict):
        raise BundleError("header is not a JSON object", path)
    return header, blob[8 + n :]


def _data_sha256(blob: bytes) -> str:
    _, data = _split(blob, None)
    return hashlib.sha256(data).hexdigest()


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle; every way it can be wrong raises :class:`BundleError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise BundleError("no such bundle file", path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror}", path) from exc
    raw_header, data = _split(blob, path)
    header = _config_of(raw_header.get("__metadata__") or {}, path)
    version = header.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"schema version {version!r} is not supported (this build reads {SCHEMA_VERSION})", path)
    expected = {k: v for k, v in raw_header.items() if k != "__metadata__"}
    try:
        last = max((int(v["data_offsets"][1]) for v in expected.values()), default=0)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BundleError(f"the tensor table in the header is malformed ({exc!r})", path) from exc
    if last != len(data):
        raise BundleError(f"weights are {len(data)} bytes but the header says {last}: truncated or padded", path)
    if hashlib.sha256(data).hexdigest() != header.get("weights_sha256"):
        raise BundleError("weights checksum mismatch: the file was modified or corrupted", path)
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise BundleError(f"weights cannot be decoded: {exc}", path) from exc
    return bundle_from_header(header, tensors, path)


def read_bundle_header(path: str | Path) -> Bundle:
    """The bundle described by ``path``'s header, without its weights (``state_dict`` is empty).

    safetensors parses and bounds-checks the header only; the config is validated by the engine's
    :func:`~engine.bundle.bundle_from_header`. Every failure is a :class:`BundleError` naming the file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"cannot read the bundle header: {exc}", path) from exc
    return bundle_from_header(_config_of(meta, path), {}, path)


def _config_of(meta: Any, path: Path | None) -> dict[str, Any]:
    """The DermViewer config JSON stored in a safetensors file's ``__metadata__``."""
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise BundleError("safetensors file without a DermViewer config (not a bundle)", path)
    if not isinstance(meta[_META_KEY], str):
        raise BundleError("bundle config is not a JSON string", path)
    try:
        header = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as exc:
        raise BundleError("bundle config is not valid JSON", path) from exc
    if not isinstance(header, dict):
        raise BundleError("bundle config is not a JSON object", path)
    return header


def bundle_from_header(
    header: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    path: Path | None = None,
    error: type[DermViewerError] = BundleError,
) -> Bundle:
    """A :class:`Bundle` from its JSON header (and weights, which may be empty for an ONNX-only model)."""
    if header.get("schema_version") != SCHEMA_VERSION:
        raise error(f"bundle schema version {header.get('schema_version')!r} is not supported", path)

    def section(key: str, required: bool = True) -> dict[str, Any]:
        if key not in header and not required:
            return {}
        value = header.get(key)
        if not isinstance(value, dict):
            raise error(f"bundle config {key!r} must be a JSON object, got {type(value).__name__}", path)
        return dict(value)

    try:
        return Bundle(
            name=str(header["name"]),
            version=str(header["version"]),
            model_config=ModelConfig.from_dict(section("model")),
            preprocess=PreprocessConfig.from_dict(section("preprocess")),
            taxonomy=Taxonomy.from_dict(section("taxonomy"), path),
            state_dict=state_dict,
            thresholds=section("thresholds", required=False),
            metrics=section("metrics", required=False),
            provenance=section("provenance", required=False),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise error(f"bundle config is incomplete or malformed: {exc!r}", path) from exc
    except DermViewerError as exc:
        raise error(f"bundle config is invalid: {exc.reason}", path) from exc
