"""Atomic file writes (temporary file in the same folder, fsync, rename, fsync of the folder): an export is
either the old file or the whole new one, never half of it, even if the process dies mid-write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from dermviewer.state.annotate.errors import ProjectWriteError

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    out = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        tmp = None
        if hasattr(os, "O_DIRECTORY"):
            dfd = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as exc:
        raise ProjectWriteError(f"cannot write: {exc.strerror or exc}", out) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return out
