"""Typed errors of the annotation project: each names the project file and says what to do about it."""

from __future__ import annotations

from engine.errors import DermViewerError

__all__ = ["ProjectError", "ProjectWriteError"]


class ProjectError(DermViewerError):
    """A project file cannot be opened: not a database, corrupt, of a newer schema, or not a DermViewer project."""


class ProjectWriteError(DermViewerError):
    """An edit could not be saved (read-only file or folder, full disk, lock held too long).

    The transaction was rolled back: everything saved before it is still in the project, and the edit can be
    retried once the cause is fixed.
    """
