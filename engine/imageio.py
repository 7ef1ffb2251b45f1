"""Photo loading: any supported photo file in, one upright RGB ``uint8`` array out (engine part 1).

Every later stage (bundle preprocessing, the ``Predictor``, ``engine.explain``, the viewer) takes the
array this module returns as the truth about what the photo looks like, so every normalisation lives
here and nowhere else: EXIF orientation, alpha, palettes, 1-bit, 16-bit and CMYK.

Decisions worth knowing:

* Only JPEG (incl. MPO, the multi-picture JPEG some phones write), PNG, TIFF, BMP and WebP are decoded;
  Pillow is told so, so no other parser ever sees untrusted bytes.  GIF is refused rather than taken
  as its first frame: a 256-colour palette destroys the colour differences the models rely on, and no
  clinical camera writes GIF.  Multi-page TIFF and animated WebP yield their first frame.
* Transparency is composited over white.  Dropping alpha would expose whatever colour hides under
  alpha 0 (often black), and a black background reads to a lesion model as pigment; white is also how
  viewers show cut-out photos.  Fully opaque RGBA (like the PAD-UFES-20 originals) is unchanged.
* 16-bit samples are rescaled (``round(v * 255 / 65535)``), never clipped, so 65535 -> 255.
* Embedded ICC profiles are ignored: the training pipeline ignored them too, and agreeing with the
  data the weights saw matters more here than colorimetry.
* The pixel limit is checked on the header size before any pixel is decoded.  Pillow's own bomb check
  still applies above ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179 MP) whatever ``max_pixels`` says;
  the global is never changed, its warning is silenced only around ``Image.open``.
* Truncated files raise: ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False (its default).
* ``load_image(path, max_side=S)`` decodes a JPEG with DCT scaling (Pillow's ``draft``) at the smallest
  of 1/1, 1/2, 1/4, 1/8 whose longer side is still at least ``S``: a 12 MP phone photo decodes at
  2000x1500 for ``S = DISPLAY_MAX_SIDE`` in about a quarter of the time, and the model (256 px) and a fitted
  view lose nothing. Other formats, and JPEGs already small enough, decode in full. The pixel limit is
  still checked on the full size in the header, before anything is decoded.

Writing (`save_image`, `strip_metadata`) builds a fresh image from pixels alone, so nothing of a
source file's metadata -- EXIF (with GPS), XMP, IPTC, ICC, PNG text chunks, comments, thumbnails --
can travel into anything the app writes.  Orientation survives because it is baked into the pixels.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from engine.errors import ImageLoadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DISPLAY_MAX_SIDE",
    "SUPPORTED_SUFFIXES",
    "ImageInfo",
    "is_supported",
    "load_image",
    "read_image_info",
    "save_image",
    "strip_metadata",
]

DEFAULT_MAX_PIXELS = 100_000_000
"""About 100 MP: above any phone or dermatoscope photo, small enough that RGB fits in ~300 MB."""

DISPLAY_MAX_SIDE = 1600
"""What the viewer decodes a large JPEG to (longer side, at least): a fitted window and the model need no more."""

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp",
)  # fmt: skip

_PILLOW_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_REFUSED_MAGIC = ((b"GIF8", "GIF"), (b"%PDF", "PDF"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"))
_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Pillow's documented and observed failures on malformed input; anything else is a bug to surface.
_DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error)
# 16-bit -> 8-bit with rounding: 257 * k -> k exactly, 32768 -> 128.
_GRAY16_LUT = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

StrPath = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says; ``width``/``height`` are as displayed, i.e. after EXIF orientation."""

    width: int
    height: int
    format: str
    mode: str
    has_exif: bool
    orientation: int = 1


def is_supported(path: StrPath) -> bool:
    """Whether the suffix is one we offer in file dialogs; loading itself trusts content, not names."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def read_image_info(path: StrPath) -> ImageInfo:
    """Read size, format, mode and EXIF presence from the header, without decoding pixels.

    An EXIF block a PNG stores after its pixel data is not seen here (`load_image` does apply it).
    """
    path = Path(path)
    with _opened(path) as img:
        # Image.getexif, not PngImageFile.getexif: the latter decodes the whole image to look for a
        # trailing eXIf chunk.
        exif = Image.Image.getexif(img)
        orientation = int(exif.get(ExifTags.Base.Orientation, 1))
        orientation = orientation if 1 <= orientation <= 8 else 1
        width, height = img.size
        if isinstance(img, TiffImagePlugin.TiffImageFile):
            has_exif = ExifTags.IFD.Exif in exif or ExifTags.IFD.GPSInfo in exif
            # Recent Pillow already reports TIFF sizes as displayed; the tags hold the stored size.
            width, height = int(img.tag_v2[ExifTags.Base.ImageWidth]), int(img.tag_v2[ExifTags.Base.ImageLength])
        else:
            has_exif = bool(img.info.get("exif")) or "Raw profile type exif" in img.info
        if orientation >= 5:
            width, height = height, width
        return ImageInfo(width, height, str(img.format), img.mode, has_exif, orientation)


def load_image(path: StrPath, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None) -> np.ndarray:
    """Decode a photo to an upright ``HxWx3`` ``uint8`` RGB array (C-contiguous, writable).

    ``max_side``: a JPEG may be decoded smaller, by DCT scaling, as long as its longer side stays at least
    ``max_side`` (see the module docstring); ``None`` decodes every pixel.
    Raises `ImageLoadError` for missing, empty, truncated, corrupt, unsupported or too large files.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    path = Path(path)
    with _opened(path) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageLoadError(
                f"{width}x{height} = {width * height:,} pixels exceeds the pixel limit of {max_pixels:,}",
                path,
            )
        if max_side is not None and img.format in ("JPEG", "MPO") and max(width, height) > max_side:
            scale = max_side / max(width, height)
            # draft picks the largest DCT scale whose result is still at least this size in both axes
            img.draft(img.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img, path)


def save_image(path: StrPath, rgb: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Write ``rgb`` (``HxWx3`` uint8) as PNG or JPEG, chosen by suffix, with no metadata at all.

    JPEG keeps full-resolution chroma (4:4:4): colour is diagnostic.  The file appears atomically
    (written beside it, then renamed), so a crash never leaves half an image.  OS errors propagate.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: can only save {', '.join(_SAVE_FORMATS)}")
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        raise ValueError(f"expected an HxWx3 uint8 array, got {getattr(rgb, 'shape', type(rgb))}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"cannot save an empty image of shape {rgb.shape}")
    img = Image.fromarray(np.ascontiguousarray(rgb))  # fresh image: empty info, no EXIF/ICC/XMP
    options: dict[str, int] = {"quality": jpeg_quality, "subsampling": 0} if fmt == "JPEG" else {}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with tmp.open("wb") as fh:
            img.save(fh, format=fmt, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def strip_metadata(src: StrPath, dst: StrPath, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Re-encode ``src`` as ``dst`` from its pixels only: orientation baked in, alpha over white.

    This is a re-encode, not a byte-level edit: a JPEG destination loses a little quality once.
    """
    save_image(dst, load_image(src, max_pixels=max_pixels))


@contextmanager
def _opened(path: Path) -> Iterator[ImageFile.ImageFile]:
    """Open ``path`` with Pillow (header only) and turn every decoding failure into `ImageLoadError`."""
    if path.is_dir():
        raise ImageLoadError("is a directory, not an image file", path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError("file not found", path) from None
    except OSError as err:
        raise ImageLoadError(f"cannot access file: {err.strerror or err}", path) from err
    if size == 0:
        raise ImageLoadError("file is empty (0 bytes)", path)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; our own limit decides (see the module docstring).
            # catch_warnings is process-global before Python 3.14: a racing thread may at worst keep
            # this one filter, which only ever silences a warning we replace with our own check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"header exceeds the pixel limit ({err})", path) from err
    except UnidentifiedImageError:
        raise ImageLoadError(_unidentified_reason(path), path) from None
    except _DECODE_ERRORS as err:
        raise ImageLoadError(f"cannot read image header: {err}", path) from err
    with img:
        try:
            yield img
        except MemoryError:
            raise ImageLoadError("not enough memory to decode this image", path) from None
        except _DECODE_ERRORS as err:
            raise ImageLoadError(f"truncated or corrupt image data: {err}", path) from err


def _unidentified_reason(path: Path) -> str:
    """Name the format of a file Pillow was not allowed to (or could not) identify, for the user."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError:
        head = b""
    name = next((n for magic, n in _REFUSED_MAGIC if head.lstrip().startswith(magic)), None)
    if head[4:8] == b"ftyp":
        name = "HEIC/HEIF/AVIF"
    supported = "JPEG, PNG, TIFF, BMP or WebP"
    if name is None:
        return f"not an image, or not a supported format ({supported})"
    return f"{name} files are not supported; convert to {supported}"


def _to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """Collapse every pixel mode to RGB uint8 (see the module docstring for the choices)."""
    mode = img.mode
    if mode == "F":
        raise ImageLoadError("floating-point pixels are not supported", path)
    if mode in _GRAY16_MODES or mode == "I":
        values = np.asarray(img)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageLoadError("32-bit integer pixels outside the 16-bit range are not supported", path)
        gray = _GRAY16_LUT[values]
        return np.repeat(gray[:, :, None], 3, axis=2)
    try:
        if img.has_transparency_data:
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img.convert("RGBA"))
        rgb = np.array(img.convert("RGB"), dtype=np.uint8)
    except ValueError as err:
        raise ImageLoadError(f"unsupported pixel mode {mode!r}: {err}", path) from err
    return np.ascontiguousarray(rgb)
