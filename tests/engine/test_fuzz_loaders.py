"""Fuzzing the engine's loaders (issue 16) for a fixed budget: photos, model bundles and ONNX files.

Every input is a real file mutated (tests/fuzzing.py): real PAD-UFES-20 photos (and the same pixels written as
PNG, TIFF, BMP, WebP and an EXIF-rotated JPEG), a saved bundle, and the ONNX export of that bundle. Byte-level
mutations stop most inputs at the first check; structured ones (the JSON config edited, the file re-stamped
so its length prefix or checksum still holds) reach the parsers behind those checks. The property: each
loader returns, or raises the project's typed error naming the file; nothing else escapes, nothing hangs.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from engine.backends.onnx_backend import read_onnx
from engine.backends.onnx_format import META_BUNDLE, META_SHA256, META_WEIGHTS_SHA256
from engine.bundle import load_bundle, read_bundle_header
from engine.errors import ExportError
from engine.export import export_onnx
from engine.export.onnx_export import stamp_metadata
from engine.imageio import load_image, read_image_info
from tests.fuzzing import Blob, budget, check_loader, mutated_bytes, mutated_json

PHOTOS = ("PAT_656_1246_483.jpg", "PAT_100_393_898.jpg")  # 300x300 copies' JPEGs
FULL_RES = "PAT_1278_965_701.jpg"  # made from a full-resolution original (512x512 here)


# --- photos ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_seeds(data_dir: Path) -> list[tuple[str, Blob]]:
    """(suffix, bytes) of real photos in every format the loader decodes."""
    seeds = [(".jpg", (data_dir / "images" / name).read_bytes()) for name in (*PHOTOS, FULL_RES)]
    seeds.append((".png", (data_dir / "masks" / "PAT_100_393_898.png").read_bytes()))  # a real 8-bit mask
    small = Image.open(data_dir / "images" / PHOTOS[1]).convert("RGB").resize((64, 48))
    for suffix, fmt, opts in ((".png", "PNG", {}), (".tif", "TIFF", {"compression": "tiff_lzw"}),
                              (".bmp", "BMP", {}), (".webp", "WEBP", {"quality": 80}),
                              (".jpg", "JPEG", {"progressive": True})):
        buf = io.BytesIO()
        small.save(buf, format=fmt, **opts)
        seeds.append((suffix, buf.getvalue()))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 on display
    buf = io.BytesIO()
    small.save(buf, format="JPEG", exif=exif.tobytes())
    seeds.append((".jpg", buf.getvalue()))
    rgba = small.convert("RGBA")
    rgba.putalpha(128)
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    seeds.append((".png", buf.getvalue()))
    return [(suffix, Blob(blob)) for suffix, blob in seeds]


def test_fuzz_seed_photos_all_load(photo_seeds: list[tuple[str, bytes]], tmp_path: Path) -> None:
    """The unmutated seeds load: otherwise the fuzz below would only ever see rejections."""
    for i, (suffix, blob) in enumerate(photo_seeds):
        path = tmp_path / f"seed{i}{suffix}"
        path.write_bytes(blob)
        assert load_image(path).ndim == 3


@budget(250)
@given(data=st.data())
def test_fuzz_load_image_raises_only_image_load_error(photo_seeds: list[tuple[str, bytes]],
                                                      tmp_path_factory: pytest.TempPathFactory,
                                                      data: st.DataObject) -> None:
    suffix, seed = data.draw(st.sampled_from(photo_seeds), label="seed")
    blob = data.draw(mutated_bytes(seed, header=1024), label="mutated")
    path = tmp_path_factory.getbasetemp() / f"fuzz_photo{suffix}"
    path.write_bytes(blob)
    rgb = check_loader("engine.imageio.load_image", lambda: load_image(path), path)
    if rgb is not None:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
    check_loader("engine.imageio.read_image_info", lambda: read_image_info(path), path)


# --- bundles --------------------------------------------------------------------------------------

def _split_bundle(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _join_bundle(header: object, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data


@pytest.fixture(scope="module")
def bundle_blob(tiny_bundle: Path) -> bytes:
    return Blob(tiny_bundle.read_bytes())


def _check_bundle(path: Path) -> None:
    bundle = check_loader("engine.bundle.load_bundle", lambda: load_bundle(path), path)
    if bundle is not None:  # what Predictor does next: a config that loads must build, or say why it cannot
        check_loader("engine.bundle.Bundle.build_model", bundle.build_model, path)
    check_loader("engine.bundle.read_bundle_header", lambda: read_bundle_header(path), path)


@budget(120)
@given(data=st.data())
def test_fuzz_bundle_bytes_raise_only_bundle_error(bundle_blob: bytes, tmp_path_factory: pytest.TempPathFactory,
                                                   data: st.DataObject) -> None:
    (n,) = struct.unpack("<Q", bundle_blob[:8])
    blob = data.draw(mutated_bytes(bundle_blob, header=8 + n + 64), label="mutated")
    path = tmp_path_factory.getbasetemp() / "fuzz_bytes.dmvb"
    path.write_bytes(blob)
    _check_bundle(path)


@budget(120)
@given(data=st.data())
def test_fuzz_bundle_header_json_raises_only_bundle_error(bundle_blob: bytes,
                                                          tmp_path_factory: pytest.TempPathFactory,
                                                          data: st.DataObject) -> None:
    """The header edited and the length prefix made right again: the DermViewer config (weights checksum
    left intact, so the config itself is what gets parsed) or safetensors' own tensor table."""
    header, weights = _split_bundle(bundle_blob)
    if data.draw(st.booleans(), label="edit the DermViewer config"):
        config = json.loads(header["__metadata__"]["dermviewer_bundle"])
        edited = data.draw(mutated_json(config), label="config")
        header["__metadata__"]["dermviewer_bundle"] = json.dumps(edited.value)
    else:
        header = data.draw(mutated_json(header), label="tensor table").value
    path = tmp_path_factory.getbasetemp() / "fuzz_header.dmvb"
    path.write_bytes(_join_bundle(header, weights))
    _check_bundle(path)


# --- ONNX -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_blob(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return Blob(export_onnx(tiny_bundle, tmp_path_factory.mktemp("fuzz_onnx") / "tiny.onnx").read_bytes())


def _check_onnx(blob: bytes, path: Path) -> None:
    path.write_bytes(blob)
    check_loader("engine.backends.onnx_backend.read_onnx", lambda: read_onnx(path), path)


@budget(100)
@given(data=st.data())
def test_fuzz_onnx_bytes_raise_only_export_error(onnx_blob: bytes, tmp_path_factory: pytest.TempPathFactory,
                                                 data: st.DataObject) -> None:
    blob = data.draw(mutated_bytes(onnx_blob, header=4096, tail=16384), label="mutated")
    _check_onnx(blob, tmp_path_factory.getbasetemp() / "fuzz_bytes.onnx")


GRAPH_EDITS = ("config", "input_dim", "input_name", "output_type", "drop_output", "drop_node", "opset", "ir")


@budget(20)
@given(data=st.data())
def test_fuzz_onnx_restamped_edits_raise_only_export_error(onnx_blob: bytes,
                                                           tmp_path_factory: pytest.TempPathFactory,
                                                           data: st.DataObject) -> None:
    """An edited model re-stamped with a valid checksum (as a buggy exporter would write it): the config,
    the signature and the graph are what is checked, not the checksum."""
    model = onnx.load_model_from_string(onnx_blob)
    meta = {p.key: p.value for p in model.metadata_props}
    header = json.loads(meta[META_BUNDLE])
    edit = data.draw(st.sampled_from(GRAPH_EDITS), label="edit")
    g = model.graph
    if edit == "config":
        header = data.draw(mutated_json(header), label="config").value
    elif edit == "input_dim":
        dim = g.input[0].type.tensor_type.shape.dim[data.draw(st.integers(0, 3))]
        dim.dim_value = data.draw(st.integers(0, 2**31))
    elif edit == "input_name":
        g.input[0].name = data.draw(st.text(max_size=8))
    elif edit == "output_type":
        g.output[data.draw(st.integers(0, len(g.output) - 1))].type.tensor_type.elem_type = data.draw(
            st.integers(0, 16))
    elif edit == "drop_output":
        del g.output[data.draw(st.integers(0, len(g.output) - 1))]
    elif edit == "drop_node":
        del g.node[data.draw(st.integers(0, len(g.node) - 1))]
    elif edit == "opset":
        model.opset_import[0].version = data.draw(st.integers(-1, 40))
    else:
        model.ir_version = data.draw(st.integers(-1, 20))
    stamp_metadata(model, header, meta[META_WEIGHTS_SHA256], "fp32")
    _check_onnx(model.SerializeToString(), tmp_path_factory.getbasetemp() / "fuzz_restamped.onnx")


def test_onnx_metadata_that_is_not_utf8_is_an_export_error(onnx_blob: bytes, tmp_path: Path) -> None:
    """Found by the byte fuzzer: protobuf parses a metadata value whose bytes are not UTF-8 and fails only
    when the checksum step writes it back (UnicodeDecodeError escaped read_onnx)."""
    checksum = {p.key: p.value for p in onnx.load_model_from_string(bytes(onnx_blob)).metadata_props}
    digest = checksum[META_SHA256].encode()
    at = bytes(onnx_blob).rindex(digest)
    blob = bytes(onnx_blob)[:at] + b"\x80" + bytes(onnx_blob)[at + 1:]
    path = tmp_path / "not_utf8.onnx"
    path.write_bytes(blob)
    with pytest.raises(ExportError, match=r"not_utf8\.onnx"):
        read_onnx(path)
