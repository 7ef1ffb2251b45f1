"""Where a dataset's pixels come from: photo files, or the resized images of an HDF5 pack.

Each source also names every photo by a content hash, the key of the evaluation cache: a file's
SHA-256 (so a re-saved photo is re-evaluated, a renamed one is not), or for a pack the source file's
SHA-256 tagged with the pack's image size (the pack holds resized pixels, which predict differently);
both rules are :mod:`engine.eval_cache`'s, so ``dermviewer-train evaluate --cache`` keys photos the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from dermviewer.state.research.errors import DatasetError
from engine.eval_cache import pack_photo_hash, photo_hash
from engine.imageio import load_image

__all__ = ["FileImages", "ImageSource", "NoImages", "PackImages"]


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int) -> np.ndarray:
        """RGB uint8; raises ``ImageLoadError`` / :class:`DatasetError` naming the file."""
        ...

    def hash(self, index: int) -> str: ...

    def path(self, index: int) -> Path | None:
        """The photo file, when there is one (the inspector and the exported manifest need it)."""
        ...


class FileImages:
    """Photo files; a ``None`` path is a photo the dataset names but nobody has (loading it fails)."""

    def __init__(self, paths: Sequence[Path | None]) -> None:
        self.paths = [None if p is None else Path(p) for p in paths]
        self._hashes: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        p = self.paths[index]
        if p is None:
            raise DatasetError(f"photo {index} is not in the manifest it was joined with")
        return load_image(p)

    def hash(self, index: int) -> str:
        if index not in self._hashes:
            p = self.paths[index]
            if p is None:
                return f"nofile:{index}"
            try:
                self._hashes[index] = photo_hash(p)
            except OSError:
                self._hashes[index] = f"missing:{p}"  # never cached as a result: loading it fails
        return self._hashes[index]

    def path(self, index: int) -> Path | None:
        return self.paths[index]


class PackImages:
    """Reads one image at a time from the pack (chunked per image), reopening the file lazily."""

    def __init__(self, pack: Path, rows: Sequence[int], hashes: Sequence[str], size: int,
                 files: Sequence[Path | None] = ()) -> None:
        self.pack, self.rows, self.size = Path(pack), [int(r) for r in rows], int(size)
        self._hashes = [pack_photo_hash(h, size) for h in hashes]
        self._files = list(files) or [None] * len(self.rows)
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> np.ndarray:
        try:
            if self._file is None:
                self._file = h5py.File(self.pack, "r")
            return np.asarray(self._file["images"][self.rows[index]])
        except (OSError, KeyError) as exc:
            raise DatasetError(f"cannot read image {self.rows[index]} of the pack: {exc}", self.pack) from exc

    def hash(self, index: int) -> str:
        return self._hashes[index]

    def path(self, index: int) -> Path | None:
        return self._files[index]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class NoImages:
    """Predictions without pixels (an out-of-fold file opened without its manifest)."""

    def __init__(self, n: int, source: Path) -> None:
        self.n, self.source = n, source

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> np.ndarray:
        raise DatasetError("this dataset has no photos (open the out-of-fold file with its manifest)", self.source)

    def hash(self, index: int) -> str:
        return f"nopixels:{self.source.name}:{index}"

    def path(self, index: int) -> Path | None:
        return None
