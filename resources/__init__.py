"""Data package: taxonomies, bundled models and sample assets, read through importlib.resources."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["default_model_path", "resource_path", "sample_photo_path"]


def resource_path(*parts: str) -> Path:
    """Filesystem path of a file shipped in this package."""
    return Path(str(files(__name__).joinpath(*parts)))


def default_model_path() -> Path:
    """The bundle the app and the CLI open when the user names none."""
    return resource_path("models", "default.dmvb")


def sample_photo_path() -> Path:
    """The one photo shipped with the app (PAD-UFES-20, CC BY 4.0; see ``samples/ATTRIBUTION.md``), for the
    self-test: a real photo, so an installed copy can be checked end to end without any data set."""
    return resource_path("samples", "PAT_656_1246_483.jpg")
