"""Typed errors. Each carries the file (where there is one) and a reason a user can act on."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BundleError", "DermViewerError", "EvaluationCacheError", "ExportError", "ImageLoadError",
           "ModelConfigError", "TaxonomyError"]


class DermViewerError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class ImageLoadError(DermViewerError):
    """A photo could not be read: missing, empty, truncated, not an image, too large, unsupported."""


class BundleError(DermViewerError):
    """A model bundle is truncated, tampered, of another schema version or does not match its weights."""


class ExportError(DermViewerError):
    """An ONNX file is invalid, tampered, or disagrees with the bundle it claims to come from."""


class TaxonomyError(DermViewerError):
    """A taxonomy file is malformed."""


class ModelConfigError(DermViewerError):
    """A model was asked for with an impossible combination of options."""


class EvaluationCacheError(DermViewerError):
    """An evaluation cache file (or a shard of one) is unreadable or was written for another model."""
