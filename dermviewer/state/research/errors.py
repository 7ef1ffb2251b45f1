"""Typed errors of the research mode; each names the file and a reason a researcher can act on.

``CacheError`` is the engine's :class:`~engine.errors.EvaluationCacheError` (the cache format lives in
:mod:`engine.eval_cache`)."""

from __future__ import annotations

from engine.errors import DermViewerError
from engine.errors import EvaluationCacheError as CacheError

__all__ = ["CacheError", "DatasetError", "MappingError"]


class DatasetError(DermViewerError):
    """A dataset (manifest, spec, folder CSV, HDF5 pack, out-of-fold file) is missing, malformed or
    does not fit the model's taxonomy."""


class MappingError(DermViewerError):
    """A taxonomy mapping file is malformed or maps onto a class the model does not have."""
