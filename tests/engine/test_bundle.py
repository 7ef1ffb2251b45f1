"""Bundle round trip and every way a bundle file can be wrong."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from engine.bundle import load_bundle, save_bundle
from engine.errors import BundleError
from engine.models import create_model, model_config
from engine.preprocess import PreprocessConfig
from engine.taxonomy import load_taxonomy


def test_round_trip_keeps_config_and_outputs(tiny_bundle: Path):
    b = load_bundle(tiny_bundle)
    assert b.name == "tiny-test" and b.version == "1" and b.untrained
    assert b.preprocess.img_size == 96 and b.taxonomy.head("disease").codes[0] == "ACK"
    assert b.metrics == {"disease": {"macro_f1": 0.1}}
    torch.manual_seed(0)
    original = create_model("dermimitformer_tiny").eval()  # same seed as the fixture
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        a, c = original(x), b.build_model()(x)
    for key in ("disease_fused", "body_part", "attributes", "lsm_disease"):
        assert torch.allclose(a[key], c[key], atol=1e-6)


def test_half_precision_bundle_is_smaller_and_close(tmp_path: Path):
    model = create_model("dermimitformer_tiny").eval()
    kw = dict(model_config=model_config("dermimitformer_tiny"), taxonomy=load_taxonomy("pad_ufes_20"),
              preprocess=PreprocessConfig(img_size=96), name="t")
    full = save_bundle(tmp_path / "f.dmvb", model, **kw)
    half = save_bundle(tmp_path / "h.dmvb", model, half=True, **kw)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        d = (model(x)["disease_fused"] - load_bundle(half).build_model()(x)["disease_fused"]).abs().max()
    assert d < 5e-2


def _rewrite_header(src: Path, dst: Path, edit) -> None:
    blob = src.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["dermviewer_bundle"])
    edit(meta, header)
    header["__metadata__"]["dermviewer_bundle"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n :])


def test_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope.dmvb")
    (tmp_path / "empty.dmvb").write_bytes(b"")
    with pytest.raises(BundleError, match="too short") as e:
        load_bundle(tmp_path / "empty.dmvb")
    assert e.value.path == tmp_path / "empty.dmvb"


def test_truncated_bundle(tiny_bundle: Path, tmp_path: Path):
    bad = tmp_path / "trunc.dmvb"
    bad.write_bytes(tiny_bundle.read_bytes()[:-1000])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(bad)
    bad.write_bytes(tiny_bundle.read_bytes()[:100])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(bad)


def test_tampered_weights(tiny_bundle: Path, tmp_path: Path):
    blob = bytearray(tiny_bundle.read_bytes())
    blob[-10] ^= 0xFF
    bad = tmp_path / "tampered.dmvb"
    bad.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(bad)


def test_wrong_schema_version(tiny_bundle: Path, tmp_path: Path):
    bad = tmp_path / "v99.dmvb"
    _rewrite_header(tiny_bundle, bad, lambda meta, _h: meta.update(schema_version=99))
    with pytest.raises(BundleError, match="schema version 99"):
        load_bundle(bad)


def test_config_that_does_not_match_the_weights(tiny_bundle: Path, tmp_path: Path):
    bad = tmp_path / "mismatch.dmvb"
    _rewrite_header(tiny_bundle, bad, lambda meta, _h: meta["model"].update(embed_dim=128))
    b = load_bundle(bad)
    with pytest.raises(BundleError, match="do not match"):
        b.build_model()


def test_malformed_config(tiny_bundle: Path, tmp_path: Path):
    bad = tmp_path / "malformed.dmvb"
    _rewrite_header(tiny_bundle, bad, lambda meta, _h: meta["model"].update(fusion="magic"))
    with pytest.raises(BundleError, match="fusion"):
        load_bundle(bad)


@pytest.mark.parametrize("key", ["model", "preprocess", "taxonomy", "thresholds", "provenance"])
def test_a_config_section_that_is_not_an_object_is_named(tiny_bundle: Path, tmp_path: Path, key: str):
    """Found by the header fuzzer: ``"model": []`` reached ``ModelConfig.from_dict`` as a list and
    escaped as an AttributeError instead of a BundleError."""
    bad = tmp_path / f"{key}_list.dmvb"
    _rewrite_header(tiny_bundle, bad, lambda meta, _h: meta.update({key: []}))
    with pytest.raises(BundleError, match=f"'{key}' must be a JSON object") as e:
        load_bundle(bad)
    assert e.value.path == bad


def test_plain_safetensors_and_garbage_are_not_bundles(tmp_path: Path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(BundleError, match="not a bundle"):
        load_bundle(plain)
    junk = tmp_path / "junk.dmvb"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\0" * 64)
    with pytest.raises(BundleError, match="JSON"):
        load_bundle(junk)


def test_loading_never_unpickles(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    import pickle

    def boom(*_a, **_k):
        raise AssertionError("a bundle load must not unpickle")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_bundle(tiny_bundle).build_model()


def test_shipped_default_bundle_loads_and_says_what_it_is():
    from resources import default_model_path

    b = load_bundle(default_model_path())
    assert b.taxonomy.name == "pad_ufes_20"
    assert b.untrained == ("untrained" in b.name)
