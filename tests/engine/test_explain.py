"""Tests for engine.explain: LSM maps and token boxes, Grad-CAM per head and class, rollout, overlays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.bundle import Bundle
from engine.errors import ModelConfigError
from engine.explain import (
    HeadClassTarget,
    HeadLogits,
    TokenGridReshape,
    attention_rollout,
    blend,
    default_target_layer,
    grad_cam,
    lsm_map,
    lsm_overlay_image,
    overlay,
    rollout_from_attentions,
    selected_boxes,
    token_box,
)
from engine.imageio import load_image
from engine.inference import Predictor
from engine.models import create_model
from engine.preprocess import preprocess_batch


@pytest.fixture(scope="module")
def model(bundle: Bundle) -> nn.Module:
    return bundle.build_model("cpu")


@pytest.fixture(scope="module")
def photo(real_photos: list[Path]) -> np.ndarray:
    return load_image(real_photos[0])


@pytest.fixture(scope="module")
def batch(bundle: Bundle, real_photos: list[Path]) -> torch.Tensor:
    return torch.from_numpy(preprocess_batch([load_image(p) for p in real_photos[:2]], bundle.preprocess))


# --- LSM map and selected tokens ---------------------------------------------------------------

def test_lsm_map_peaks_at_the_largest_score() -> None:
    scores = np.full(36, 0.01, np.float32)
    scores[13] = 0.5  # row 2, col 1 of a 6x6 grid
    scores[30] = 0.3
    m = lsm_map(scores, grid=(6, 6))
    assert m.shape == (6, 6)
    assert np.unravel_index(m.argmax(), m.shape) == (2, 1)
    assert m.min() == 0.0 and m.max() == 1.0
    raw = lsm_map(torch.from_numpy(scores), grid=(6, 6), normalize=False)
    assert raw[2, 1] == pytest.approx(0.5) and raw[5, 0] == pytest.approx(0.3)


def test_lsm_map_and_boxes_follow_the_models_own_scores(model: nn.Module, bundle: Bundle, photo: np.ndarray) -> None:
    x = torch.from_numpy(preprocess_batch([photo], bundle.preprocess))
    with torch.inference_mode():
        out = model(x)
    s = out["lsm_disease"][0].numpy()
    pred = Predictor(bundle, device="cpu").predict(photo)
    gh, gw = bundle.model_config.grid_size
    m = lsm_map(pred, head="disease")
    assert m.shape == (gh, gw)
    assert np.unravel_index(m.argmax(), m.shape) == divmod(int(s.argmax()), gw)
    k = bundle.model_config.top_k
    top_k = np.argsort(-s)[:k]  # the top-K tokens by s_n, computed here independently of the model's topk
    h, w = photo.shape[:2]
    boxes = selected_boxes(pred.selected["disease"], (gh, gw), (h, w))
    expected = {(round(c * w / gw), round(r * h / gh), round((c + 1) * w / gw), round((r + 1) * h / gh))
                for r, c in (divmod(int(i), gw) for i in top_k)}
    assert len(boxes) == k
    assert set(boxes) == expected


def test_token_boxes_tile_a_non_square_image_exactly() -> None:
    grid, size = (6, 6), (300, 601)  # (height, width)
    assert token_box(7, grid, size) == (100, 50, 200, 100)
    assert token_box(8, grid, (300, 600)) == (200, 50, 300, 100)  # row 1, column 2: rows and columns not swapped
    cover = np.zeros(size, np.int32)
    for x0, y0, x1, y1 in selected_boxes(range(36), grid, size):
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()
    with pytest.raises(ValueError, match="outside"):
        token_box(36, grid, size)


# --- Grad-CAM ----------------------------------------------------------------------------------

def _positive_cams(model: nn.Module, x: torch.Tensor, head: str, classes: range) -> dict[int, np.ndarray]:
    """Grad-CAMs of ``classes``, keeping those with any positive evidence (an all-negative CAM is 0 after ReLU)."""
    batch = x.unsqueeze(0).expand(len(classes), -1, -1, -1)  # one photo, one class per row: a single CAM pass
    cams = dict(zip(classes, grad_cam(model, batch, head, list(classes)), strict=True))
    for cam in cams.values():
        assert cam.shape == (96, 96) and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() <= 1.0
    return {c: cam for c, cam in cams.items() if cam.max() > 0.5}


def test_grad_cam_is_a_unit_map_that_depends_on_class_and_head(model: nn.Module, batch: torch.Tensor) -> None:
    x = batch[0]
    per_head = {h: _positive_cams(model, x, h, range(5)) for h in ("disease", "body_part", "attributes")}
    for head, cams in per_head.items():
        assert len(cams) >= 2, head
        first, *others = cams.values()
        assert all(np.abs(first - other).mean() > 0.02 for other in others), head
    d, b, a = (next(iter(per_head[h].values())) for h in ("disease", "body_part", "attributes"))
    assert np.abs(d - b).mean() > 0.02 and np.abs(b - a).mean() > 0.02 and np.abs(d - a).mean() > 0.02


def test_grad_cam_fast_path_equals_plain_pytorch_grad_cam(model: nn.Module, batch: torch.Tensor) -> None:
    from pytorch_grad_cam import GradCAM, HiResCAM

    flags = [p.requires_grad for p in model.parameters()]
    layer = default_target_layer(model, "attributes")
    reshape = TokenGridReshape((6, 6), 1)
    for method, cam_class in (("hirescam", HiResCAM), ("gradcam", GradCAM)):
        fast = grad_cam(model, batch, "attributes", [2, 4], method=method)
        assert fast.shape == (2, 96, 96)
        assert [p.requires_grad for p in model.parameters()] == flags  # frozen only for the call
        with cam_class(HeadLogits(model, "attributes"), [layer], reshape_transform=reshape) as cam:
            plain = cam(batch, [HeadClassTarget("attributes", 2), HeadClassTarget("attributes", 4)])
        np.testing.assert_allclose(fast, plain, atol=1e-5)
    with pytest.raises(ValueError, match="method"):
        grad_cam(model, batch, "attributes", method="eigencam")


def test_grad_cam_uses_the_models_grid_and_runs_in_fp32_under_bf16_autocast(batch: torch.Tensor) -> None:
    torch.manual_seed(1)
    m = create_model("dermimitformer_tiny", img_size=128).eval()  # 8x8 grid, not 6x6 and not 14x14
    x = torch.nn.functional.interpolate(batch[:1], size=128)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
        cam = grad_cam(m, x, "disease")
    assert cam.shape == (1, 128, 128) and np.isfinite(cam).all()
    with pytest.raises(ModelConfigError):
        TokenGridReshape((6, 6), 1)(torch.zeros(1, 65, 8))
    with pytest.raises(ModelConfigError, match="outside"):
        grad_cam(m, x, "disease", 99)


def test_a_cnn_floors_cam_is_spatial_and_equals_classic_grad_cam(batch: torch.Tensor) -> None:
    """A PlainClassifier (global average pooling, then linear) has a Grad-CAM now; there HiResCAM and
    Grad-CAM are the same map (the gradient at the last conv map is the same at every cell)."""
    torch.manual_seed(0)
    floor = create_model("lite0_classifier", num_classes={"disease": 6}).eval()  # ImageNet trunk, random head
    with torch.no_grad():
        floor.heads["disease"].weight[1].uniform_(0.0, 0.1)  # class 1: positive evidence from every channel
    assert default_target_layer(floor) is floor.trunk.bn2  # conv_head -> BN -> act: the input of the pooling
    x = torch.nn.functional.interpolate(batch, size=224, mode="bilinear")
    cams = grad_cam(floor, x, "disease", [1, 1])
    assert cams.shape == (2, 224, 224) and cams.dtype == np.float32
    assert cams.max() == pytest.approx(1.0) and cams.min() == 0.0
    assert cams.std() > 0.1  # a map, not a constant
    np.testing.assert_allclose(cams, grad_cam(floor, x, "disease", [1, 1], method="gradcam"), atol=1e-4)
    flipped = grad_cam(floor, torch.flip(x, dims=[3]), "disease", [1, 1])  # the map follows the content
    assert np.corrcoef(flipped[0, :, ::-1].ravel(), cams[0].ravel())[0, 1] > 0.5
    assert np.corrcoef(flipped[0].ravel(), cams[0].ravel())[0, 1] < np.corrcoef(
        flipped[0, :, ::-1].ravel(), cams[0].ravel())[0, 1]


def test_the_target_layer_per_model_type() -> None:
    tiny = create_model("dermimitformer_tiny")
    lite2 = create_model("dermimitformer_lite2", pretrained=False)
    lite0 = create_model("dermimitformer_lite0", pretrained=False)
    # the hybrids: the last stride-16 EfficientNet stage that is not the stem's output, the same for every head
    lite2_dilated = create_model("dermimitformer_lite2", pretrained=False, patch_stride=16)
    assert default_target_layer(lite2) is lite2.backbone.stem[6] and len(lite2.backbone.stem) == 11  # 5th stage
    assert default_target_layer(lite0) is lite0.backbone.stem[5] and len(lite0.backbone.stem) == 7  # 4th stage
    assert default_target_layer(lite2_dilated) is lite2_dilated.backbone.stem[8]  # 7th stage, dilated
    # one stride-16 stage, and it is the stem's output: that stage
    assert default_target_layer(tiny, "disease") is tiny.backbone.stem[5] is default_target_layer(tiny, "body_part")
    resnet = create_model("resnet50_classifier")
    assert default_target_layer(resnet) is resnet.trunk.layer4
    with pytest.raises(ModelConfigError):
        default_target_layer(nn.Linear(2, 2))


def test_context_changes_the_map_only_when_it_changes_the_logits(batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    m = create_model("dermimitformer_tiny", context_fields=("age", "itch", "bleed")).eval()
    x = batch[:1]
    ctx = torch.tensor([[1.5, 1.0, -1.0]])
    none = grad_cam(m, x, "disease", 2)
    # FiLM starts as the identity (its last layer is zero): this context does not change the logits yet ...
    with torch.no_grad():
        assert torch.equal(m(x, ctx)["disease_fused"], m(x)["disease_fused"])
    np.testing.assert_allclose(grad_cam(m, x, "disease", 2, context=ctx), none, atol=1e-6)
    with torch.no_grad():
        m.context_film.net[2].weight.normal_(0.0, 0.5)
        assert not torch.allclose(m(x, ctx)["disease_fused"], m(x)["disease_fused"])
        assert torch.equal(m(x, torch.zeros(1, 3))["disease_fused"], m(x)["disease_fused"])  # all fields absent
    # ... once it does, the map explains the photo-plus-context logit; "nothing known" stays the photo-only map
    with_ctx = grad_cam(m, x, "disease", 2, context=ctx)
    assert np.abs(with_ctx - grad_cam(m, x, "disease", 2)).mean() > 0.01
    np.testing.assert_allclose(grad_cam(m, x, "disease", 2, context=torch.zeros(3)), grad_cam(m, x, "disease", 2),
                               atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        grad_cam(m, x, "disease", 2, context=torch.zeros(2, 3))


# --- rollout -----------------------------------------------------------------------------------

def test_rollout_shape_and_range(model: nn.Module, batch: torch.Tensor) -> None:
    maps = attention_rollout(model, batch, "disease")
    assert maps.shape == (2, 6, 6) and maps.min() >= 0.0 and maps.max() == pytest.approx(1.0)
    single = attention_rollout(model, batch[0], "body_part", discard_ratio=0.5)
    assert single.shape == (6, 6)


def test_rollout_follows_where_the_class_token_attends() -> None:
    t = 1 + 9
    attn = torch.full((1, 2, t, t), 1.0 / t)
    attn[:, :, 0, :] = 0.01
    attn[:, :, 0, 1 + 4] = 1.0 - 0.01 * (t - 1)  # the class token looks at patch 4
    scores = rollout_from_attentions([attn, attn], num_prefix_tokens=1)
    assert scores.shape == (1, 9) and int(scores.argmax()) == 4
    uniform = rollout_from_attentions([torch.eye(t).expand(1, 2, t, t)], num_prefix_tokens=1)
    assert torch.allclose(uniform, torch.zeros(1, 9))  # identity attention: the class token keeps to itself


# --- overlays ----------------------------------------------------------------------------------

def test_overlay_has_the_images_size(photo: np.ndarray) -> None:
    img = np.ascontiguousarray(photo[:, : photo.shape[1] * 2 // 3])  # non-square
    m = np.zeros((6, 6), np.float32)
    m[0, 5] = 1.0
    layer = overlay(img, m, "viridis", 0.4)
    assert layer.shape == (*img.shape[:2], 4) and layer.dtype == np.uint8
    assert (layer[..., 3] == round(0.4 * 255)).all()
    hot = overlay(img, m, "jet", 1.0, alpha_from_map=True)
    h, w = img.shape[:2]
    assert hot[0, w - 1, 3] > 200 and hot[h - 1, 0, 3] == 0  # transparent where the map is cold
    out = blend(img, hot)
    assert out.shape == img.shape and (out[h - 1, 0] == img[h - 1, 0]).all()
    with pytest.raises(ValueError, match="colormap"):
        overlay(img, m, "nope")


def test_lsm_overlay_image_draws_the_selected_boxes(bundle: Bundle, photo: np.ndarray) -> None:
    pred = Predictor(bundle, device="cpu").predict(photo)
    out = lsm_overlay_image(photo, pred, box_color=(0, 255, 0))
    assert out.shape == photo.shape and out.dtype == np.uint8
    x0, y0, x1, _ = selected_boxes(pred.selected["disease"], pred.grid_size, photo.shape[:2])[0]
    assert (out[y0, x0 : x1 - 1] == (0, 255, 0)).all()
    pred.lsm.clear()
    with pytest.raises(ModelConfigError):
        lsm_overlay_image(photo, pred)


def test_importing_explain_and_export_loads_no_heavy_optional_module_and_no_qt() -> None:
    heavy = ["pytorch_grad_cam", "onnx", "onnxruntime", "PySide6"]
    code = f"import sys, engine.explain, engine.export; print(*[m in sys.modules for m in {heavy!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False"] * len(heavy)
