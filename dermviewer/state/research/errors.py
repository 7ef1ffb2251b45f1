"""Typed errors of the research mode; each names the file and a reason a researcher can act on."""

from __future__ import annotations

from engine.errors import DermViewerError

__all__ = ["CacheError", "DatasetError", "MappingError"]


class DatasetError(DermViewerError):
    """A dataset (manifest, spec, folder CSV, HDF5 pack, out-of-fold file) is missing, malformed or
    does not fit the model's taxonomy."""


class MappingError(DermViewerError):
    """A taxonomy mapping file is malformed or maps onto a class the model does not have."""


class CacheError(DermViewerError):
    """An evaluation cache file is unreadable or was written for another model."""
