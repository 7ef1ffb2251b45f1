"""training.lsm_mask_loss: the auxiliary loss pulls LSM scores onto the lesion, and only on masked photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.masks import load_mask
from engine.metrics.localisation import lsm_hit_rate
from engine.models import create_model
from training.lsm_mask_loss import LsmMaskLoss, lesion_cells, lsm_mask_loss

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pad_ufes_20"
GRID = (8, 8)


@pytest.fixture(scope="module")
def real_mask() -> np.ndarray:
    path = DATA / "masks" / "PAT_100_393_595.png"
    if not path.is_file():
        pytest.fail(f"the shared data set is missing at {DATA}")
    return load_mask(path)


def test_lesion_cells_are_the_lesion_share_of_each_token_cell(real_mask: np.ndarray) -> None:
    cells = lesion_cells(real_mask, GRID)
    assert cells.shape == GRID and cells.dtype == np.float32
    assert cells.min() >= 0.0 and cells.max() <= 1.0
    assert cells.mean() == pytest.approx(real_mask.mean(), abs=0.01)  # the area is kept
    h, w = real_mask.shape
    r, c = np.unravel_index(int(cells.argmax()), GRID)  # the fullest cell is lesion in the mask too
    assert real_mask[r * h // 8 : (r + 1) * h // 8, c * w // 8 : (c + 1) * w // 8].mean() == pytest.approx(
        cells[r, c], abs=0.02)
    assert np.isnan(lesion_cells(None, GRID)).all()


def test_descending_the_loss_moves_the_top_k_onto_the_lesion(real_mask: np.ndarray) -> None:
    cov = torch.from_numpy(lesion_cells(real_mask, GRID)).reshape(1, -1)
    lesion = (cov > 0).numpy().reshape(GRID)
    torch.manual_seed(0)
    logits = torch.randn(1, 64)
    logits[0, cov[0] == 0] += 2.0  # start with the score mass off the lesion
    logits.requires_grad_(True)
    k = 8

    def hit(lg: torch.Tensor) -> float:
        return lsm_hit_rate(lg.detach().topk(k, dim=1).indices[0].numpy(), GRID, lesion).hit_rate

    with torch.no_grad():
        before, loss0 = hit(logits), float(lsm_mask_loss(logits.softmax(-1), cov))
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        lsm_mask_loss(logits.softmax(-1), cov).backward()
        opt.step()
    with torch.no_grad():
        after, loss1 = hit(logits), float(lsm_mask_loss(logits.softmax(-1), cov))
    assert before < 0.5 and after == 1.0
    assert loss1 < loss0
    inside = torch.where(cov > 0, 1.0, 0.0)
    assert float(lsm_mask_loss(inside, cov)) < float(lsm_mask_loss(1.0 - inside, cov))


def test_photos_without_a_mask_get_no_gradient(real_mask: np.ndarray) -> None:
    cov = torch.from_numpy(lesion_cells(real_mask, GRID)).reshape(1, -1)
    lesion = torch.cat([cov, torch.full_like(cov, float("nan")), torch.zeros_like(cov)])  # masked, none, empty
    scores = torch.rand(3, 64, requires_grad=True)
    loss = lsm_mask_loss(scores, lesion)
    loss.backward()
    assert scores.grad is not None
    assert scores.grad[0].abs().sum() > 0
    assert scores.grad[1:].abs().sum() == 0
    none = lsm_mask_loss(scores[1:], lesion[1:])
    assert float(none.detach()) == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="does not match"):
        lsm_mask_loss(scores, torch.zeros(3, 7, 7))


def test_as_extra_loss_it_reaches_the_disease_heads_attention_of_a_real_model(real_mask: np.ndarray) -> None:
    torch.manual_seed(0)
    model = create_model("dermimitformer_tiny").train()  # 96 px: a 6x6 token grid
    x = torch.randn(2, 3, 96, 96)
    out = model(x)
    cells = torch.from_numpy(np.stack([lesion_cells(real_mask, (6, 6)), lesion_cells(None, (6, 6))]))
    loss = LsmMaskLoss(weight=0.5)(model, out, {"lesion": cells})
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    qkv = model.heads["disease"].blocks[-1].attn.qkv.weight.grad
    assert qkv is not None and qkv.abs().sum() > 0
    assert model.head_fused.fc.weight.grad is None  # it shapes where the head looks, not the classifier
    assert float(LsmMaskLoss()(model, out, {}).detach()) == 0.0  # no masks in the batch: free
