"""The ONNX cache: an entry is used only when it verifies; truncated, corrupted, stale or foreign entries
are rebuilt, never run (issue 14). The graph from the cache agrees with the torch module on real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import resources
from engine.bundle import file_sha256, read_bundle_header
from engine.errors import ExportError
from engine.inference import Predictor
from engine.onnx_cache import FORMAT, build_entry, cached_onnx, read_entry

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pad_ufes_20"
PHOTOS = sorted((DATA / "images").glob("*.jpg"))[:12]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle copy, cache root with its entry) built once; tests copy the root before damaging it."""
    tmp = tmp_path_factory.mktemp("onnx_cache")
    bundle = tmp / "model.dmvb"
    shutil.copyfile(resources.default_model_path(), bundle)
    root = tmp / "root"
    build_entry(bundle, root)
    return bundle, root


@pytest.fixture
def cache(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, str]:
    bundle, root = built
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    return bundle, copy, file_sha256(bundle)


def _entry_files(root: Path, sha: str) -> tuple[Path, Path]:
    return root / f"{sha}.onnx", root / f"{sha}.json"


def test_a_fresh_entry_verifies_and_records_what_it_was_built_from(cache) -> None:
    bundle, root, sha = cache
    onnx, meta = _entry_files(root, sha)
    entry = read_entry(root, sha, read_bundle_header(bundle))
    assert entry is not None and entry.blob == onnx.read_bytes()
    recorded = json.loads(meta.read_text())
    assert recorded["bundle_sha256"] == sha and recorded["format"] == FORMAT
    assert recorded["onnx_size"] == onnx.stat().st_size


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "empty", "sidecar_garbage", "sidecar_missing",
                                    "other_format"])
def test_a_damaged_entry_is_refused_and_removed(cache, damage: str) -> None:
    bundle, root, sha = cache
    onnx, meta = _entry_files(root, sha)
    blob = onnx.read_bytes()
    if damage == "truncated":
        onnx.write_bytes(blob[: len(blob) // 2])
    elif damage == "flipped_byte":  # same size, protobuf may still parse: only the checksum catches it
        mid = len(blob) // 2
        onnx.write_bytes(blob[:mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1:])
    elif damage == "empty":
        onnx.write_bytes(b"")
    elif damage == "sidecar_garbage":
        meta.write_text("{not json")
    elif damage == "sidecar_missing":
        meta.unlink()
    elif damage == "other_format":
        m = json.loads(meta.read_text())
        m["format"] = FORMAT + 1
        meta.write_text(json.dumps(m))
    assert read_entry(root, sha, read_bundle_header(bundle)) is None
    if damage != "sidecar_missing":
        assert not onnx.exists() and not meta.exists()  # removed, so nothing later trusts it either


def test_the_cpu_optimised_graph_is_checked_too_and_tied_to_its_onnxruntime(cache) -> None:
    bundle, root, sha = cache
    opt = root / f"{sha}.cpu.onnx"
    meta = root / f"{sha}.json"
    entry = read_entry(root, sha, read_bundle_header(bundle))
    assert entry is not None and entry.cpu_optimized == opt.read_bytes()
    m = json.loads(meta.read_text())
    m["cpu_optimized"]["onnxruntime"] = "0.0-other"
    meta.write_text(json.dumps(m))
    entry = read_entry(root, sha, read_bundle_header(bundle))
    assert entry is not None and entry.cpu_optimized is None  # another runtime's: the plain graph runs
    blob = opt.read_bytes()
    opt.write_bytes(blob[:-10])
    assert read_entry(root, sha, read_bundle_header(bundle)) is None  # damaged: the whole entry goes
    assert not opt.exists() and not meta.exists()


def test_an_entry_copied_under_another_bundles_checksum_is_stale(cache, tmp_path: Path) -> None:
    """A changed bundle (here: re-saved with other metrics) has a new checksum; the old graph renamed to it
    must not pass for the new bundle's."""
    bundle, root, sha = cache
    from engine.bundle import load_bundle, save_bundle

    b = load_bundle(bundle)
    other = tmp_path / "retrained.dmvb"
    model = b.build_model("cpu")
    save_bundle(other, model, model_config=b.model_config, taxonomy=b.taxonomy, preprocess=b.preprocess,
                name=b.name, version=b.version + "-retrained", thresholds=b.thresholds, metrics={"changed": 1.0},
                provenance=b.provenance, half=True)
    new_sha = file_sha256(other)
    assert new_sha != sha
    for src, dst in zip(_entry_files(root, sha), _entry_files(root, new_sha), strict=True):
        shutil.copyfile(src, dst)
    assert read_entry(root, new_sha, read_bundle_header(other)) is None


def test_an_entry_for_another_model_config_is_refused(cache) -> None:
    bundle, root, sha = cache
    header = read_bundle_header(bundle)
    other = header.model_config.replace(img_size=header.model_config.img_size + 32)
    header.model_config = other
    assert read_entry(root, sha, header) is None


def test_a_corrupted_entry_is_rebuilt_and_the_rebuilt_one_runs(cache, photo_path: Path) -> None:
    bundle, root, sha = cache
    onnx, _ = _entry_files(root, sha)
    good = onnx.read_bytes()
    onnx.write_bytes(good[:1000])
    _, entry = cached_onnx(bundle, root)  # builds in-process (this test process may import torch)
    assert entry.blob == good  # the export is deterministic: the same graph as before the damage
    p = Predictor(bundle, device="cpu", backend="onnx", cache_dir=root)
    assert p.backend_name == "onnx" and p.file_sha256 == sha
    assert p.predict(photo_path).differential


def test_a_build_that_cannot_verify_is_an_error_not_a_silent_fallback(cache, monkeypatch) -> None:
    bundle, root, sha = cache
    _entry_files(root, sha)[0].write_bytes(b"garbage")
    import engine.onnx_cache as oc

    monkeypatch.setattr(oc, "build_entry", lambda *a, **k: _entry_files(root, sha)[0].write_bytes(b"still bad"))
    with pytest.raises(ExportError, match="does not verify"):
        cached_onnx(bundle, root)


@pytest.fixture
def photo_path() -> Path:
    assert PHOTOS, f"no PAD-UFES-20 photos under {DATA}"
    return PHOTOS[0]


def test_cached_onnx_agrees_with_torch_on_real_photos(built) -> None:
    bundle, root = built
    onnx = Predictor(bundle, device="cpu", backend="onnx", cache_dir=root)
    torch_p = Predictor(bundle, device="cpu", backend="torch")
    assert len(PHOTOS) >= 8
    a, b = onnx.predict_batch(PHOTOS), torch_p.predict_batch(PHOTOS)
    for pa, pb in zip(a, b, strict=True):
        assert pa.differential[0].code == pb.differential[0].code
        pa_probs = {s.code: s.probability for s in pa.differential}
        pb_probs = {s.code: s.probability for s in pb.differential}
        assert max(abs(pa_probs[k] - pb_probs[k]) for k in pa_probs) < 1e-4
        for head in pb.lsm:
            np.testing.assert_allclose(pa.lsm[head], pb.lsm[head], atol=1e-4)
            assert list(pa.selected[head]) == list(pb.selected[head])
        assert [s.code for s in pa.attributes if s.positive] == [s.code for s in pb.attributes if s.positive]


def test_the_apps_subprocess_build_fills_the_cache_and_reports_a_bad_bundle(built, tmp_path: Path) -> None:
    """The app builds a missing entry in a child process (torch stays out of the app's own process)."""
    bundle, _ = built
    root = tmp_path / "fresh"
    header, entry = cached_onnx(bundle, root, subprocess_build=True)
    assert entry.bundle_sha256 == file_sha256(bundle) and entry.cpu_optimized
    assert read_entry(root, entry.bundle_sha256, header) is not None
    bad = tmp_path / "bad.dmvb"
    blob = bytearray(bundle.read_bytes())
    blob[-100] ^= 0xFF  # a flipped weight byte: the header still reads, the weights checksum does not match
    bad.write_bytes(bytes(blob))
    with pytest.raises(ExportError, match="checksum mismatch"):
        cached_onnx(bad, root, subprocess_build=True)
    assert list(root.glob(f"{file_sha256(bad)}*")) == []
