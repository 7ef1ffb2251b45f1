"""The research mode's evaluation cache: one HDF5 file per model checksum, one row per photo hash.

The format (keys, layout, resume, shards) is :mod:`engine.eval_cache`, shared with ``dermviewer-train
evaluate --cache``, which fills the same files across torchrun processes; the app only decides where it
keeps them. A changed model has another checksum, so it finds no file and re-evaluates (old files stay for
the old model: switching back is instant).
"""

from __future__ import annotations

from pathlib import Path

from engine.eval_cache import EvaluationCache

__all__ = ["EvaluationCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``<user cache folder>/evaluations`` (tests point ``DERMVIEWER_CACHE_DIR`` elsewhere)."""
    from dermviewer.state.settings import cache_dir

    return cache_dir() / "evaluations"
