"""Crafting image files for the image-loading tests: asymmetric scenes, EXIF blocks, lying headers."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pad_ufes_20"


def scene(height: int = 48, width: int = 80, block: int = 16) -> np.ndarray:
    """A non-square image of flat blocks, each a different colour, so every flip/rotation differs.

    Flat 16-px blocks survive JPEG almost unchanged, which keeps tolerances on lossy formats tight.
    """
    rows, cols = height // block, width // block
    ys, xs = np.mgrid[0:rows, 0:cols]
    colours = np.stack([ys * 200 // max(rows - 1, 1), xs * 255 // max(cols - 1, 1), 60 + 0 * xs], -1)
    img = np.repeat(np.repeat(colours, block, axis=0), block, axis=1).astype(np.uint8)
    img[:block, :block] = (255, 0, 0)  # a red top-left corner marks "up and left" for a human reader
    return np.ascontiguousarray(img)


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores when the upright view needs EXIF ``orientation`` to be shown.

    Written from the EXIF 2.3 definitions (e.g. 6: "0th row is the visual right-hand side, 0th column
    the visual top"), independently of Pillow, so a wrong transpose in the loader cannot cancel out.
    """
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, -1),
    }
    return np.ascontiguousarray(transforms[orientation](upright))


def exif_bytes(orientation: int | None = None, *, gps: bool = False) -> bytes:
    """An EXIF block with an optional Orientation tag and an optional GPS position (Vitória, Brazil)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        ifd[ExifTags.GPS.GPSLatitudeRef] = "S"
        ifd[ExifTags.GPS.GPSLatitude] = (20.0, 19.0, 10.0)
        ifd[ExifTags.GPS.GPSLongitudeRef] = "W"
        ifd[ExifTags.GPS.GPSLongitude] = (40.0, 20.0, 16.0)
    return exif.tobytes()


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 grey PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed up).

    Decoding it would have to allocate the claimed size, so only a header check can reject it quickly.
    """
    Image.new("L", (1, 1), 128).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
