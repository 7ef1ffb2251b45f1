"""Fused attention (engine.export.fuse): same outputs as the unfused graph on real photos, the LSM heads'
blocks left explicit, ``Attention`` nodes present, typed errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine.bundle import Bundle
from engine.errors import ExportError
from engine.export import (
    FUSED_INT8_PRECISION,
    FUSED_PRECISION,
    export_onnx,
    optimize_attention,
    quantize_fused_int8,
    read_onnx,
)
from engine.export.fuse import _runner
from engine.export.parity import preprocessed_batches, probabilities, run_all
from engine.models import build_model, model_config
from engine.preprocess import PreprocessConfig
from engine.taxonomy import load_taxonomy

# A small ViT DermImitFormer: timm's ViT-Ti/16 (192 wide, 3 heads) at 96 px, 2 shared + 2x3 head layers.
SMALL_VIT = {"backbone": "vit:vit_tiny_patch16_224", "img_size": 96, "embed_dim": 192, "depth": 2, "num_heads": 3,
             "top_k": 4, "pretrained": False}


@pytest.fixture(scope="module")
def fp32_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = model_config("dermimitformer_vit_b16_384").replace(**SMALL_VIT)
    model = build_model(cfg).eval()
    bundle = Bundle("small-vit", "1", cfg, PreprocessConfig(img_size=cfg.img_size), load_taxonomy("pad_ufes_20"),
                    {k: v.detach() for k, v in model.state_dict().items()}, provenance={"untrained": True})
    return export_onnx(bundle, tmp_path_factory.mktemp("fuse") / "small_vit.onnx")


@pytest.fixture(scope="module")
def fused(fp32_path: Path):  # type: ignore[no-untyped-def]
    return optimize_attention(fp32_path, fp32_path.with_name("small_vit.fused.onnx"))


def _outputs(path: Path, photos: list[Path]) -> dict[str, np.ndarray]:
    f = read_onnx(path)
    return run_all(_runner(f), preprocessed_batches(photos, f.bundle, 8))


def test_fused_graph_has_attention_nodes_and_keeps_the_lsm_blocks_explicit(fused) -> None:  # type: ignore[no-untyped-def]
    model = onnx.load(str(fused.path))
    attention = [n for n in model.graph.node if n.op_type == "Attention" and n.domain == "com.microsoft"]
    assert len(attention) >= 1
    assert len(attention) == fused.attention_fused == 4
    assert sorted(fused.fused_blocks) == ["backbone.blocks.0", "backbone.blocks.1", "body_part.blocks.0",
                                          "body_part.blocks.1"]
    lsm = [e for e in fused.unfused_blocks if "LSM" in e]
    assert sorted(e.split(":")[0] for e in lsm) == ["attributes.blocks.0", "attributes.blocks.1",
                                                    "disease.blocks.0", "disease.blocks.1"]
    assert {n.op_type for n in model.graph.node} >= {"Softmax", "TopK"}  # LSM attention is still a graph value
    assert fused.fused_operators["Attention"] == 4
    f = read_onnx(fused.path)  # checksum, signature and metadata re-validated
    assert f.precision == FUSED_PRECISION


def test_fused_graph_gives_the_unfused_outputs_on_real_photos(fp32_path: Path, fused, real_photos) -> None:  # type: ignore[no-untyped-def]
    ref, got = _outputs(fp32_path, real_photos), _outputs(fused.path, real_photos)
    assert set(ref) == set(got)
    bundle = read_onnx(fp32_path).bundle
    p_ref, p_got = probabilities(ref, bundle.taxonomy), probabilities(got, bundle.taxonomy)
    for k in p_ref:
        np.testing.assert_allclose(p_got[k], p_ref[k], atol=1e-5, err_msg=k)
    np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=1e-4, rtol=1e-4)
    for head in ("disease", "attributes"):
        np.testing.assert_allclose(got[f"lsm_{head}"], ref[f"lsm_{head}"], rtol=1e-4, atol=1e-9)
        np.testing.assert_array_equal(got[f"selected_{head}"], ref[f"selected_{head}"])


def test_fused_int8_quantises_the_attention_weights(fp32_path: Path, fused, real_photos) -> None:  # type: ignore[no-untyped-def]
    q = quantize_fused_int8(fused.path, fused.path.with_name("small_vit.fused.int8.onnx"), reference=fp32_path,
                            images=real_photos[:2])
    assert q.quantized["QAttention"] == 4
    assert q.quantized["MatMulInteger"] >= 1
    assert q.n_images == 2 and q.top1_agreement is not None
    f = read_onnx(q.path)
    assert f.precision == FUSED_INT8_PRECISION
    assert f.output_names == read_onnx(fp32_path).output_names


def test_corrupt_input_raises_export_error_naming_the_file(tmp_path: Path, fp32_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(fp32_path.read_bytes()[:4096])  # truncated
    with pytest.raises(ExportError, match=r"broken\.onnx") as info:
        optimize_attention(broken, tmp_path / "out.onnx")
    assert info.value.path == broken
    assert not (tmp_path / "out.onnx").exists()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model\xff" * 10)
    with pytest.raises(ExportError, match=r"garbage\.onnx"):
        optimize_attention(garbage, tmp_path / "out.onnx")


def test_an_already_fused_graph_is_refused(fused, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="fp32") as info:
        optimize_attention(fused.path, tmp_path / "twice.onnx")
    assert info.value.path == fused.path
