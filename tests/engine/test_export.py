"""Tests for engine.export: ONNX export with metadata, ORT parity on real photos (Predictor and CLI),
typed errors for tampered files, and measured int8 agreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine import cli
from engine.bundle import Bundle, load_bundle, save_bundle
from engine.errors import ExportError
from engine.export import (
    INT8_PRECISION,
    META_BUNDLE,
    OnnxBackend,
    check_parity,
    export_onnx,
    quantize_int8,
    read_onnx,
)
from engine.export.onnx_export import stamp_metadata
from engine.imageio import load_image
from engine.inference import Predictor, onnx_predictor


@pytest.fixture(scope="module")
def onnx_path(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Not next to the bundle: an .onnx sibling would be picked up by Predictor(bundle, backend="onnx").
    return export_onnx(tiny_bundle, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_export_has_every_output_a_dynamic_batch_and_the_bundle_config(
    bundle: Bundle, onnx_path: Path
) -> None:
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model)
    with torch.inference_mode():
        torch_keys = list(bundle.build_model("cpu")(torch.zeros(1, 3, 96, 96)))
    assert [o.name for o in model.graph.output] == torch_keys
    assert {"lsm_disease", "selected_disease", "lsm_attributes", "selected_attributes", "embedding"} <= set(torch_keys)
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[META_BUNDLE]) == json.loads(json.dumps(bundle.header()))
    backend = OnnxBackend(onnx_path)
    for n in (1, 3):
        out = backend.run(np.random.default_rng(n).standard_normal((n, 3, 96, 96), dtype=np.float32))
        assert list(out) == torch_keys
        assert all(v.shape[0] == n for v in out.values())
        assert out["selected_disease"].dtype == np.int64 and out["selected_disease"].shape == (n, 4)


def test_parity_report_on_real_photos(bundle: Bundle, onnx_path: Path, real_photos: list[Path]) -> None:
    report = check_parity(bundle, onnx_path, real_photos)
    assert report.ok, report.summary()
    assert report.n_images == len(real_photos) and report.top1_agreement == 1.0
    assert max(report.max_prob_diff.values()) <= 1e-4
    assert set(report.max_prob_diff) == {"disease", "disease_fused", "body_part", "attributes"}
    assert report.max_abs_diff["lsm_disease"] < 1e-5 and report.selected_agreement["disease"] == 1.0


def _probs(pred: object) -> np.ndarray:
    return np.array([s.probability for s in pred.differential] + [s.probability for s in pred.body_parts]  # type: ignore[attr-defined]
                    + [s.probability for s in pred.attributes])  # type: ignore[attr-defined]


def test_predictor_onnx_backend_matches_torch(bundle: Bundle, onnx_path: Path, real_photos: list[Path]) -> None:
    ref = Predictor(bundle, device="cpu").predict_batch(real_photos)
    in_memory = Predictor(bundle, device="cpu", backend="onnx")  # exports the bundle in memory
    from_file = onnx_predictor(onnx_path, device="cpu")
    assert in_memory.backend.name == from_file.backend.name == "onnx"
    assert from_file.bundle.state_dict == {} and from_file.bundle.model_config == bundle.model_config
    for predictor in (in_memory, from_file):
        got = predictor.predict_batch(real_photos)
        for r, g in zip(ref, got, strict=True):
            assert g.top.code == r.top.code
            np.testing.assert_allclose(_probs(g), _probs(r), atol=1e-4)
            assert set(g.selected["disease"]) == set(r.selected["disease"])


def test_cli_with_an_onnx_model_matches_the_bundle(
    tiny_bundle: Path, onnx_path: Path, real_photos: list[Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    images = [str(p) for p in real_photos[:3]]
    assert cli.main([*images, "--model", str(tiny_bundle), "--device", "cpu", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    overlay = tmp_path / "overlay.png"
    assert cli.main([*images, "--model", str(onnx_path), "--device", "cpu", "--json", "--overlay", str(overlay)]) == 0
    got = json.loads(capsys.readouterr().out)
    first = tmp_path / f"overlay_{Path(images[0]).stem}.png"
    assert load_image(first).shape == load_image(images[0]).shape
    assert len(got) == len(ref) == 3
    for r, g in zip(ref, got, strict=True):
        assert g["image"] == r["image"]
        assert g["differential"][0]["code"] == r["differential"][0]["code"]
        for key in ("differential", "body_parts", "attributes"):
            for a, b in zip(r[key], g[key], strict=True):
                assert a["code"] == b["code"] and abs(a["probability"] - b["probability"]) <= 1e-4


# --- tampered and foreign files ------------------------------------------------------------------

def _flip(blob: bytes, at: float) -> bytes:
    i = int(len(blob) * at)
    return blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :]


def _without_metadata(blob: bytes) -> bytes:
    model = onnx.load_model_from_string(blob)
    del model.metadata_props[:]
    return model.SerializeToString()


def _other_config(blob: bytes) -> bytes:
    """The metadata of another model pasted in (input size changed), checksum left as it was."""
    model = onnx.load_model_from_string(blob)
    for p in model.metadata_props:
        if p.key == META_BUNDLE:
            header = json.loads(p.value)
            header["model"]["img_size"] = 128
            p.value = json.dumps(header)
    return model.SerializeToString()


def _restamped_other_config(blob: bytes) -> bytes:
    """Same, but re-checksummed: the signature check must still catch the mismatch."""
    model = onnx.load_model_from_string(blob)
    header = json.loads({p.key: p.value for p in model.metadata_props}[META_BUNDLE])
    header["model"]["img_size"], header["preprocess"]["img_size"] = 128, 128
    stamp_metadata(model, header, "x", "fp32")
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("name", "tamper", "reason"),
    [
        ("flip-weights", lambda b: _flip(b, 0.5), "checksum|corrupt|valid"),
        ("flip-late", lambda b: _flip(b, 0.97), "checksum|corrupt|valid"),
        ("truncated", lambda b: b[: len(b) * 2 // 3], "corrupt|valid|truncated|metadata"),
        ("truncated-tail", lambda b: b[:-10], "corrupt|valid|truncated|metadata|checksum"),
        ("no-metadata", _without_metadata, "metadata"),
        ("other-config", _other_config, "checksum"),
        ("restamped-other-config", _restamped_other_config, "does not match"),
        ("not-onnx", lambda b: b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200), "ONNX"),
        ("empty", lambda b: b"", "empty"),
    ],
)
def test_tampered_onnx_raises_export_error(onnx_path: Path, tmp_path: Path, name: str, tamper: object,
                                           reason: str) -> None:
    bad = tmp_path / f"{name}.onnx"
    bad.write_bytes(tamper(onnx_path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ExportError, match=reason) as info:
        OnnxBackend(bad)
    assert info.value.path == bad
    with pytest.raises(ExportError):
        onnx_predictor(bad, device="cpu")


def test_cli_reports_a_tampered_onnx_file(onnx_path: Path, tmp_path: Path, real_photos: list[Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(_flip(onnx_path.read_bytes(), 0.5))
    assert cli.main([str(real_photos[0]), "--model", str(bad), "--json"]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_a_stale_onnx_beside_a_bundle_is_refused(tiny_bundle: Path, onnx_path: Path, tmp_path: Path) -> None:
    b = load_bundle(tiny_bundle)
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in b.state_dict.items()}
    model = b.build_model("cpu")
    model.load_state_dict(state)
    retrained = save_bundle(tmp_path / "m.dmvb", model, model_config=b.model_config, taxonomy=b.taxonomy,
                            preprocess=b.preprocess, name="retrained")
    shutil.copy(onnx_path, tmp_path / "m.onnx")  # exported from the old weights
    with pytest.raises(ExportError, match="other weights"):
        Predictor(retrained, device="cpu", backend="onnx")
    shutil.copy(onnx_path, tmp_path / "ok.onnx")
    shutil.copy(tiny_bundle, tmp_path / "ok.dmvb")
    assert isinstance(Predictor(tmp_path / "ok.dmvb", device="cpu", backend="onnx").backend, OnnxBackend)


# --- int8 ------------------------------------------------------------------------------------------

def test_int8_quantises_only_matmuls_and_measures_agreement(onnx_path: Path, tmp_path: Path,
                                                            real_photos: list[Path]) -> None:
    report = quantize_int8(onnx_path, tmp_path / "tiny.int8.onnx", images=real_photos)
    assert report.n_images == len(real_photos)
    assert report.top1_agreement is not None and 0.0 <= report.top1_agreement <= 1.0
    assert report.max_prob_diff is not None and report.max_prob_diff < 0.2
    model = onnx.load(str(report.path))
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulInteger" in ops and report.quantized_matmuls > 0
    assert "ConvInteger" not in ops and "Conv" in ops  # the CNN stem stays fp32
    f = read_onnx(report.path)
    assert f.precision == INT8_PRECISION
    out = OnnxBackend(f).run(np.zeros((2, 3, 96, 96), np.float32))
    assert out["disease_fused"].shape == (2, 6)
    with pytest.raises(ExportError, match="fp32"):
        quantize_int8(report.path, tmp_path / "twice.onnx")
