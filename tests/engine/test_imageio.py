"""engine.imageio: every supported file shape decodes to the same upright RGB, and bad files fail typed."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from engine.errors import ImageLoadError
from engine.imageio import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageInfo,
    is_supported,
    load_image,
    read_image_info,
    save_image,
    strip_metadata,
)
from tests.engine.imagefiles import DATA_DIR, exif_bytes, png_claiming_size, read_rows, scene, stored_for_orientation

LOSSLESS = {"PNG": {}, "TIFF": {}, "WEBP": {"lossless": True}, "BMP": {}}


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _check_rgb(arr: np.ndarray) -> None:
    assert arr.dtype == np.uint8
    assert arr.ndim == 3
    assert arr.shape[2] == 3
    assert arr.flags.c_contiguous
    assert arr.flags.writeable


# --- orientation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_every_exif_orientation_loads_upright(tmp_path: Path, fmt: str, orientation: int) -> None:
    upright = scene()
    stored = stored_for_orientation(upright, orientation)
    path = tmp_path / f"o{orientation}.{fmt.lower()}"
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else LOSSLESS[fmt]
    Image.fromarray(stored).save(path, fmt, exif=exif_bytes(orientation, gps=True), **options)

    loaded = load_image(path)

    _check_rgb(loaded)
    assert loaded.shape == upright.shape
    if fmt == "JPEG":
        assert _mean_abs_diff(loaded, upright) < 3.0
        assert tuple(loaded[4, 4]) == pytest.approx((255, 0, 0), abs=8)  # red corner back at top-left
    else:
        np.testing.assert_array_equal(loaded, upright)
    info = read_image_info(path)
    assert (info.height, info.width) == upright.shape[:2]
    assert info.orientation == orientation
    assert info.has_exif


# --- pixel modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP", "PNG"])
def test_lossless_round_trip(tmp_path: Path, fmt: str) -> None:
    original = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(original).save(path, fmt, **LOSSLESS[fmt])
    loaded = load_image(path)
    _check_rgb(loaded)
    np.testing.assert_array_equal(loaded, original)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.fromarray(scene()).save(path, quality=95)
    assert _mean_abs_diff(load_image(path), scene()) < 3.0


@pytest.mark.parametrize("adobe_marker", [True, False])
def test_cmyk_jpeg_matches_rgb(tmp_path: Path, adobe_marker: bool) -> None:
    # Standalone CMYK JPEGs store inverted inks (Photoshop's convention, which Pillow also writes);
    # browsers and Pillow assume that even when the Adobe APP14 marker is missing.
    rgb = scene()
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95, subsampling=0)
    data = buf.getvalue()
    assert data[2:4] == b"\xff\xee"
    assert data[6:11] == b"Adobe"
    if not adobe_marker:
        data = data[:2] + data[4 + int.from_bytes(data[4:6], "big") :]
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(data)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        assert ("adobe" in img.info) == adobe_marker
    loaded = load_image(path)
    _check_rgb(loaded)
    assert _mean_abs_diff(loaded, rgb) < 4.0


def test_sixteen_bit_grey_is_rescaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535, 1000, 65280]], dtype=np.uint16)
    expected = np.array([0, 1, 128, 255, 4, 254], dtype=np.uint8)
    for name, img in {
        "png": Image.fromarray(values),
        "tif": Image.frombytes("I;16B", (6, 1), values.astype(">u2").tobytes()),
        "tiff": Image.fromarray(values.astype(np.int32)),  # mode "I"
    }.items():
        path = tmp_path / f"g16.{name}"
        img.save(path)
        loaded = load_image(path)
        _check_rgb(loaded)
        for channel in range(3):
            np.testing.assert_array_equal(loaded[0, :, channel], expected, err_msg=name)


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 1] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    rgba[0, 2] = (200, 10, 10, 255)  # opaque -> unchanged
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert tuple(loaded[0, 0]) == (255, 255, 255)
    assert tuple(loaded[0, 1]) == pytest.approx((127, 127, 127), abs=1)
    assert tuple(loaded[0, 2]) == (200, 10, 10)
    assert tuple(loaded[1, 1]) == (0, 0, 0)

    la = Image.fromarray(np.dstack([np.full((2, 2), 50, np.uint8), np.array([[0, 255], [255, 255]], np.uint8)]))
    assert la.mode == "LA"
    la.save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    assert tuple(loaded[0, 0]) == (255, 255, 255)
    assert tuple(loaded[0, 1]) == (50, 50, 50)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (3, 2))
    img.putpalette([0, 0, 0, 10, 120, 30, 200, 0, 90] + [0] * (253 * 3))
    img.putdata([0, 1, 2, 2, 1, 0])
    img.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.tolist() == [
        [[255, 255, 255], [10, 120, 30], [200, 0, 90]],
        [[200, 0, 90], [10, 120, 30], [255, 255, 255]],
    ]


def test_grey_and_one_bit(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "l.png")
    np.testing.assert_array_equal(load_image(tmp_path / "l.png"), np.dstack([grey] * 3))

    bits = np.array([[True, False], [False, True]])
    Image.fromarray(bits).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as img:
        assert img.mode == "1"
    np.testing.assert_array_equal(load_image(tmp_path / "b.png")[..., 0], bits * 255)


# --- failures ----------------------------------------------------------------------------------------


def _assert_load_error(path: Path, *words: str) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    err = excinfo.value
    assert err.path == path
    assert str(err).startswith(f"{path}: ")
    for word in words:
        assert word in err.reason.lower()
    return err


def test_missing_empty_directory(tmp_path: Path) -> None:
    _assert_load_error(tmp_path / "nope.jpg", "not found")
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_load_error(tmp_path / "empty.png", "empty")
    _assert_load_error(tmp_path, "directory")
    with pytest.raises(ImageLoadError, match="not found"):
        read_image_info(tmp_path / "nope.jpg")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"Patient notes: lesion on the left forearm.\n" * 20, ["not an image"]),
        (b"GIF89a" + b"\x00" * 64, ["gif"]),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', ["svg"]),
        (b"%PDF-1.7\n" + b"0" * 64, ["pdf"]),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, ["heic"]),
    ],
)
def test_non_images_and_unsupported_formats(tmp_path: Path, content: bytes, words: list[str]) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    _assert_load_error(path, *words)


def test_real_gif_is_refused(tmp_path: Path) -> None:
    Image.fromarray(scene()).save(tmp_path / "x.gif")
    _assert_load_error(tmp_path / "x.gif", "gif")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_files_raise(tmp_path: Path, fmt: str, keep: float) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * keep)])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    _assert_load_error(path)


def test_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = png_claiming_size(tmp_path / "bomb.png", 100_000, 100_000)
    start = time.perf_counter()
    _assert_load_error(path, "pixel limit")
    with pytest.raises(ImageLoadError, match="pixel limit"):
        read_image_info(path)
    assert time.perf_counter() - start < 1.0


def test_default_limit_applies_below_pillows_and_stays_silent(tmp_path: Path) -> None:
    # 100.01 MP: above our default and Pillow's warning threshold, below Pillow's hard error.
    over = png_claiming_size(tmp_path / "over.png", 10_000, 10_001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_load_error(over, "pixel limit", f"{DEFAULT_MAX_PIXELS:,}")
        info = read_image_info(over)  # header only: the 1x1 payload is never decoded
    assert (info.width, info.height, info.format, info.mode) == (10_000, 10_001, "PNG", "L")
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's global untouched


def test_max_pixels_parameter(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    Image.fromarray(scene()).save(path)
    assert load_image(path, max_pixels=48 * 80).shape == (48, 80, 3)
    with pytest.raises(ImageLoadError, match="pixel limit of 3,839"):
        load_image(path, max_pixels=48 * 80 - 1)
    with pytest.raises(ValueError, match="positive"):
        load_image(path, max_pixels=0)


# --- info, suffixes ----------------------------------------------------------------------------------


def test_read_image_info(tmp_path: Path) -> None:
    Image.new("RGBA", (7, 5)).save(tmp_path / "a.png")
    assert read_image_info(tmp_path / "a.png") == ImageInfo(7, 5, "PNG", "RGBA", False, 1)
    Image.new("RGB", (7, 5)).save(tmp_path / "b.jpg", exif=exif_bytes(8, gps=True))
    assert read_image_info(tmp_path / "b.jpg") == ImageInfo(5, 7, "JPEG", "RGB", True, 8)
    Image.new("RGB", (7, 5)).save(tmp_path / "c.tif")
    assert read_image_info(tmp_path / "c.tif").has_exif is False


def test_is_supported() -> None:
    assert all(s.startswith(".") and s == s.lower() for s in SUPPORTED_SUFFIXES)
    assert is_supported("a/b/PHOTO.JPG")
    assert is_supported(Path("x.webp"))
    assert is_supported("scan.TIFF")
    assert not is_supported("anim.gif")
    assert not is_supported("doc.pdf")
    assert not is_supported("noext")


# --- writing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_saved_files_carry_no_metadata(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "src.jpg"
    Image.fromarray(stored_for_orientation(scene(), 6)).save(
        src, exif=exif_bytes(6, gps=True), icc_profile=b"fake-icc", comment=b"patient 123"
    )
    with Image.open(src) as img:
        assert img.getexif()
    dst = tmp_path / f"out{suffix}"
    save_image(dst, load_image(src))

    with Image.open(dst) as out:
        assert len(out.getexif()) == 0
        assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(out.info)
        assert out.size == (80, 48)  # orientation baked into the pixels
    raw = dst.read_bytes()
    assert b"Exif" not in raw
    assert b"PhoneCo" not in raw
    assert b"patient" not in raw
    assert list(tmp_path.glob(".*part")) == []


def test_strip_metadata_and_save_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src.jpg"
    Image.fromarray(stored_for_orientation(scene(), 8)).save(src, quality=95, exif=exif_bytes(8, gps=True))
    strip_metadata(src, tmp_path / "clean.png")
    assert read_image_info(tmp_path / "clean.png") == ImageInfo(80, 48, "PNG", "RGB", False, 1)
    assert _mean_abs_diff(load_image(tmp_path / "clean.png"), scene()) < 3.0

    exact = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    save_image(tmp_path / "exact.png", exact[:, ::-1])  # non-contiguous input
    np.testing.assert_array_equal(load_image(tmp_path / "exact.png"), exact[:, ::-1])


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("x.bmp", np.zeros((2, 2, 3), np.uint8)),
        ("x.png", np.zeros((2, 2), np.uint8)),
        ("x.png", np.zeros((2, 2, 4), np.uint8)),
        ("x.png", np.zeros((2, 2, 3), np.float32)),
        ("x.png", np.zeros((0, 2, 3), np.uint8)),
    ],
)
def test_save_image_rejects_bad_input(tmp_path: Path, name: str, array: np.ndarray) -> None:
    with pytest.raises(ValueError):
        save_image(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


# --- real photos -------------------------------------------------------------------------------------

needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} not present")


@needs_data
def test_full_resolution_originals_load() -> None:
    rows = read_rows(DATA_DIR / "originals" / "originals.csv")
    assert len(rows) == 8
    assert {row["mode"] for row in rows} == {"RGB", "RGBA"}
    for row in rows:
        path = DATA_DIR / row["file"]
        loaded = load_image(path)
        _check_rgb(loaded)
        assert loaded.shape == (int(row["height"]), int(row["width"]), 3), path
        assert read_image_info(path).mode == row["mode"]
        if row["mode"] == "RGBA":  # fully opaque per the README: compositing must change nothing
            with Image.open(path) as img:
                np.testing.assert_array_equal(loaded, np.asarray(img.convert("RGB")))


@needs_data
def test_resized_jpegs_load() -> None:
    rows = read_rows(DATA_DIR / "manifest.csv")
    for row in rows[:: max(1, len(rows) // 12)]:
        loaded = load_image(DATA_DIR / row["image"])
        _check_rgb(loaded)
        assert loaded.shape == (int(row["height"]), int(row["width"]), 3), row["image"]
