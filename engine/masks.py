"""Lesion masks: find the mask of a photo in a masks folder or a CSV column, and read it at the photo's size.

A mask is a grey-level image of the photo's frame where lesion pixels are bright (PAD-UFES-20's
``masks/<stem>.png``: 0 = skin, 255 = lesion; data README, "Lesion masks"). Masks are looked up by the
photo's file stem, so a pack id (``PAT_9_17_80.png``), an image path (``images/PAT_9_17_80.jpg``) and
a bare stem all find the same mask. Every failure is a :class:`MaskError` naming the file.

Reading is as guarded as photo reading (:mod:`engine.imageio`): only image formats, the pixel limit
is checked on the header, truncated files raise. A mask of another size than its photo is resized with
exact nearest-neighbour (the mask stays binary); one of another *shape* (aspect ratio off by more than
2 %) is refused, because it cannot be of the same frame.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from engine.errors import DermViewerError
from engine.imageio import DEFAULT_MAX_PIXELS

__all__ = ["MASK_SUFFIXES", "MaskError", "MaskSource", "load_mask", "mask_key"]

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")
_FORMATS = ["PNG", "BMP", "TIFF", "WEBP", "JPEG"]
_ASPECT_TOLERANCE = 0.02

StrPath = str | os.PathLike[str]


class MaskError(DermViewerError):
    """A lesion mask (or the CSV that lists masks) is missing, unreadable or not of its photo's frame."""


def mask_key(image: StrPath) -> str:
    """The lookup key of a photo or mask: its file stem without a ``_mask`` suffix."""
    stem = Path(image).stem
    return stem.removesuffix("_mask")


def _read_grey(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MaskError("no such mask file", path)
    try:
        with Image.open(path, formats=_FORMATS) as img:
            if img.width * img.height > DEFAULT_MAX_PIXELS:
                raise MaskError(f"{img.width}x{img.height} pixels is above the {DEFAULT_MAX_PIXELS} limit", path)
            img.load()
            arr = np.asarray(img)
    except UnidentifiedImageError as exc:
        raise MaskError("not a readable image (PNG, BMP, TIFF, WebP or JPEG)", path) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MaskError(f"cannot decode the mask: {exc}", path) from exc
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2)  # an RGB(A) mask: any bright channel, alpha ignored
    if arr.ndim != 2 or arr.size == 0:
        raise MaskError(f"a mask must be a 2-D grey image, got shape {arr.shape}", path)
    return arr


def load_mask(path: StrPath, size: tuple[int, int] | None = None) -> npt.NDArray[np.bool_]:
    """The lesion as a boolean ``(h, w)`` array; ``size`` = the photo's ``(height, width)`` to return it at.

    Pixels brighter than half the mask's maximum are lesion (0/255, 0/1 and anti-aliased masks alike);
    an all-dark mask is a valid mask with no lesion in it.
    """
    p = Path(path)
    arr = _read_grey(p)
    top = float(arr.max())
    lesion = arr > top / 2 if top > 0 else np.zeros(arr.shape, dtype=bool)
    if size is None or tuple(lesion.shape) == (int(size[0]), int(size[1])):
        return np.ascontiguousarray(lesion)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"a photo size must be positive, got {size}")
    mh, mw = lesion.shape
    if abs((mw / mh) / (w / h) - 1.0) > _ASPECT_TOLERANCE:
        raise MaskError(f"the mask is {mw}x{mh} but the photo is {w}x{h}: not the same frame", p)
    resized = cv2.resize(lesion.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return np.asarray(resized > 0)


def _resolve(value: str, bases: tuple[Path, ...]) -> Path:
    p = Path(value)
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p


class MaskSource(Mapping[str, Path]):
    """Photo key -> mask file, from a folder (``<stem>.png`` or ``<stem>_mask.png``) or a CSV column.

    A mapping over :func:`mask_key` keys; :meth:`load` takes any photo id or path. ``origin`` is the
    folder or CSV the masks came from (for messages).
    """

    def __init__(self, masks: Mapping[str, Path], origin: StrPath) -> None:
        self._masks = dict(masks)
        self.origin = Path(origin)

    @classmethod
    def from_folder(cls, folder: StrPath) -> MaskSource:
        root = Path(folder)
        if not root.is_dir():
            raise MaskError("no such masks folder", root)
        found: dict[str, Path] = {}
        for p in sorted(root.iterdir()):
            if p.suffix.lower() in MASK_SUFFIXES and p.is_file():
                found.setdefault(mask_key(p), p)
        return cls(found, root)

    @classmethod
    def from_csv(
        cls, table: StrPath, mask_column: str = "mask", image_column: str = "image", root: StrPath | None = None
    ) -> MaskSource:
        """Rows of ``table`` with a non-empty ``mask_column``; relative paths are taken from ``root``, by
        default from the CSV's folder or, where the file is not there, from its parent (PAD-UFES-20's
        ``masks/masks.csv`` lists ``masks/<stem>.png`` relative to the data set folder)."""
        path = Path(table)
        if not path.is_file():
            raise MaskError("no such mask table", path)
        bases = (Path(root),) if root is not None else (path.parent, path.parent.parent)
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                missing = [c for c in (mask_column, image_column) if c not in header]
                if missing:
                    raise MaskError(f"no column {missing[0]!r} (columns: {', '.join(header)})", path)
                found = {
                    mask_key(row[image_column]): _resolve(row[mask_column].strip(), bases)
                    for row in reader
                    if (row.get(mask_column) or "").strip() and (row.get(image_column) or "").strip()
                }
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise MaskError(f"cannot read the mask table: {exc}", path) from exc
        return cls(found, path)

    @classmethod
    def open(cls, location: StrPath, mask_column: str = "mask", image_column: str = "image") -> MaskSource:
        """A masks folder, or a CSV file with a mask column."""
        p = Path(location)
        if p.is_dir():
            return cls.from_folder(p)
        if p.suffix.lower() == ".csv":
            return cls.from_csv(p, mask_column, image_column)
        raise MaskError("masks must be a folder of mask images or a CSV file with a mask column", p)

    def __getitem__(self, key: str) -> Path:
        return self._masks[mask_key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str | os.PathLike) and mask_key(key) in self._masks

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def path_for(self, image: StrPath) -> Path | None:
        return self._masks.get(mask_key(image))

    def load(self, image: StrPath, size: tuple[int, int] | None = None) -> npt.NDArray[np.bool_] | None:
        """The mask of ``image`` at ``size`` (the photo's ``(height, width)``), or None if it has none."""
        path = self.path_for(image)
        return None if path is None else load_mask(path, size)
