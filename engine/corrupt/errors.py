"""The error every corruption raises for a bad image, level or parameter.

It is both a ``DermViewerError`` (so the app's error handling catches it with the others) and a
``ValueError`` (so generic callers such as slider validators can treat it as bad input).
"""

from __future__ import annotations

from engine.errors import DermViewerError

__all__ = ["CorruptionError"]


class CorruptionError(DermViewerError, ValueError):
    """A corruption was asked for with an unknown name, a level outside 1-5 or an invalid parameter."""

    def __init__(self, corruption: str | None, reason: str) -> None:
        self.corruption = corruption
        super().__init__(f"{corruption}: {reason}" if corruption else reason)
