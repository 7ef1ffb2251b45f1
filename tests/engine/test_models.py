"""DermImitFormer parts against hand computations and the paper's switches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import ModelConfigError
from engine.models import TABLE1_ROWS, create_model, list_models, model_config
from engine.models.cim import CrossAttention, CrossInteraction
from engine.models.lsm import LesionSelection, mutual_attention_scores


def test_eq1_mutual_score_matches_hand_computation():
    # one image, two heads, class token + 3 patches
    a = torch.tensor(
        [
            [[0.1, 0.5, 0.3, 0.1], [0.4, 0.2, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1], [0.2, 0.3, 0.3, 0.2]],
            [[0.4, 0.1, 0.1, 0.4], [0.1, 0.3, 0.3, 0.3], [0.3, 0.3, 0.2, 0.2], [0.9, 0.0, 0.05, 0.05]],
        ]
    ).unsqueeze(0)
    expected = []
    for n in range(1, 4):
        total = 0.0
        for m in range(2):
            row = [math.exp(a[0, m, 0, i].item()) for i in range(1, 4)]
            col = [math.exp(a[0, m, i, 0].item()) for i in range(1, 4)]
            total += (row[n - 1] / sum(row)) * (col[n - 1] / sum(col))
        expected.append(total / 2)
    got = mutual_attention_scores(a)[0].tolist()
    assert got == pytest.approx(expected, rel=1e-6)


def test_lsm_selects_top_k_tokens_and_averages_them():
    torch.manual_seed(0)
    attn = torch.rand(2, 3, 10, 10).softmax(-1)
    tokens = torch.randn(2, 9, 4)
    scores, idx, selected, local = LesionSelection(top_k=3)(tokens, [attn])
    ref = mutual_attention_scores(attn)
    assert torch.equal(scores, ref)
    for b in range(2):
        assert set(idx[b].tolist()) == set(torch.argsort(ref[b], descending=True)[:3].tolist())
        assert torch.allclose(selected[b], tokens[b, idx[b]])
        assert torch.allclose(local[b], tokens[b, idx[b]].mean(0))


def test_cross_attention_shape_and_eq4_residual():
    torch.manual_seed(0)
    ca = CrossAttention(dim=8, num_heads=2)
    g, p = torch.randn(3, 8), torch.randn(3, 5, 8)
    out = ca(g, p)
    assert out.shape == (3, 8)
    # one pooled key: softmax is 1, so Eq. 4 is LN(g) + proj(V(LN(GAP(p))))
    z = ca.norm_ctx(p.mean(1))
    assert torch.allclose(out, ca.norm_q(g) + ca.proj(ca.v(z)), atol=1e-6)


def test_cim_fusion_changes_the_disease_token():
    torch.manual_seed(0)
    cim = CrossInteraction(dim=8, num_heads=2, body_part=True, attributes=True, local=True)
    g = {h: torch.randn(2, 8) for h in ("disease", "body_part", "attributes")}
    p = {h: torch.randn(2, 6, 8) for h in g}
    sel = {"disease": torch.randn(2, 3, 8), "attributes": torch.randn(2, 3, 8)}
    out = cim(g, p, sel)
    assert set(out) == {"g_D", "g_B", "g_A", "l_D", "l_A"}
    assert all(v.shape == (2, 8) for v in out.values())
    # other body-part evidence must move g_D (g_D^B); a constant shift would not (Eq. 2's LN removes it)
    p2 = dict(p, body_part=p["body_part"] + torch.randn(2, 6, 8))
    assert not torch.allclose(cim(g, p2, sel)["g_D"], out["g_D"])


def test_cim_model_output_depends_on_fusion():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 96, 96)
    cim = create_model("dermimitformer_tiny").eval()
    with torch.no_grad():
        out = cim(x)
        feats = cim.forward_features(x)
        # perturbing only the body-part head's tokens changes the fused prediction d' but not d
        feats["body_part"]["p"] = feats["body_part"]["p"] + torch.randn_like(feats["body_part"]["p"])
        out2 = cim.forward_head(feats)
    assert torch.allclose(out["disease"], out2["disease"])
    assert not torch.allclose(out["disease_fused"], out2["disease_fused"])


@pytest.mark.parametrize("row", sorted(TABLE1_ROWS))
def test_each_table1_row_builds_and_backpropagates(row):
    torch.manual_seed(0)
    model = create_model("dermimitformer_tiny", **TABLE1_ROWS[row])
    out = model(torch.randn(2, 3, 96, 96))
    cfg = model.cfg
    assert out["disease"].shape == (2, 6) and out["disease_fused"].shape == (2, 6)
    assert ("body_part" in out) == ("body_part" in cfg.heads)
    assert ("attributes" in out) == ("attributes" in cfg.heads)
    assert ("lsm_disease" in out) == cfg.lsm
    if cfg.lsm:
        assert out["lsm_disease"].shape == (2, 36) and out["selected_disease"].shape == (2, cfg.top_k)
    loss = sum(v.sum() for k, v in out.items() if k in ("disease", "disease_fused", "body_part", "attributes"))
    loss.backward()
    stem_grad = model.backbone.proj.weight.grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0
    head_grads = [p.grad for p in model.heads["disease"].parameters() if p.requires_grad]
    assert all(g is not None for g in head_grads)


def test_vit_backbone_seeds_heads_from_its_later_blocks():
    model = create_model(
        "dermimitformer_vit_b16_384", backbone="vit:vit_tiny_patch16_224", embed_dim=192, num_heads=3,
        img_size=64, depth=10, top_k=4,
    )
    out = model(torch.randn(1, 3, 64, 64))
    assert out["lsm_disease"].shape == (1, 16)
    # the two head layers start as copies of ViT blocks 10 and 11, independently per head
    a = model.heads["disease"].blocks[0].attn.qkv.weight
    b = model.heads["body_part"].blocks[0].attn.qkv.weight
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_registry_and_bad_configs():
    names = list_models()
    assert {"dermimitformer_lite0", "dermimitformer_vit_b16_384", "lite0_classifier"} <= set(names)
    with pytest.raises(ModelConfigError, match="unknown model"):
        create_model("no_such_model")
    with pytest.raises(ModelConfigError, match="disease head"):
        model_config("dermimitformer_tiny", heads=("body_part",))
    with pytest.raises(ModelConfigError, match="fusion needs"):
        model_config("dermimitformer_tiny", heads=("disease",), fusion="cim")


@pytest.mark.parametrize(("variant", "size"), [(0, 224), (1, 240), (2, 260)])
def test_lite_weight_mapping_classifies_chelsea_as_a_cat(variant: int, size: int) -> None:
    """Each packaged ImageNet Lite checkpoint, renamed onto timm's layers, must still see a cat."""
    import cv2
    import skimage.data as skimage_data

    from engine.models.efficientnet_lite import LITE0_MEAN, LITE0_STD, create_efficientnet_lite

    model = create_efficientnet_lite(variant, pretrained=True).eval()
    img = cv2.resize(skimage_data.chelsea(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = torch.from_numpy(((img - LITE0_MEAN) / LITE0_STD).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    cat_classes = [281, 282, 283, 284, 285]  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert int(probs.argmax()) in cat_classes
    assert float(probs[cat_classes].sum()) > 0.8


@pytest.mark.parametrize(("stride", "grid"), [(32, 8), (16, 16)])
def test_whole_lite2_stem_gives_its_token_grid_and_keeps_its_pretrained_features(stride: int, grid: int) -> None:
    """stem_stages=7: the whole Lite2 gives 8x8 tokens at 256 px (16x16 dilated); only the CNN is 'backbone'."""
    from engine.models.efficientnet_lite import create_efficientnet_lite

    torch.manual_seed(0)
    model = create_model("dermimitformer_lite2", patch_stride=stride,
                         num_classes={"disease": 6, "body_part": 14, "attributes": 6}).eval()
    cnn = create_efficientnet_lite(2, pretrained=True).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        out = model(x)
        stem = model.backbone.stem(x)
    assert out["lsm_disease"].shape == (1, grid * grid)
    assert stem.shape == (1, 1280, grid, grid)
    # same weights as the ImageNet checkpoint: the stem's first conv is the packaged one
    assert torch.equal(model.backbone.stem[0].weight, cnn.conv_stem.weight)
    groups = model.param_groups()
    stem_ids = {id(p) for p in model.backbone.stem.parameters()}
    assert {id(p) for p in groups["backbone"]} == stem_ids
    assert id(model.backbone.blocks[0].attn.qkv.weight) in {id(p) for p in groups["heads"]}
