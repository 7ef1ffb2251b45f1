"""Eq. 5-7 loss: masked labels contribute exactly zero gradient; softmax vs sigmoid per the taxonomy."""

from __future__ import annotations

import torch

from engine.taxonomy import load_taxonomy
from training.losses import MultiTaskLoss


def _batch(b: int = 6) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = {
        "disease": torch.randn(b, 6, generator=g).requires_grad_(),
        "disease_fused": torch.randn(b, 6, generator=g).requires_grad_(),
        "body_part": torch.randn(b, 14, generator=g).requires_grad_(),
        "attributes": torch.randn(b, 6, generator=g).requires_grad_(),
    }
    targets = {
        "disease": torch.nn.functional.one_hot(torch.arange(b) % 6, 6).float(),
        "body_part": torch.nn.functional.one_hot(torch.arange(b) % 14, 14).float(),
        "attributes": (torch.rand(b, 6, generator=g) > 0.5).float(),
    }
    masks = {
        "disease": torch.ones(b),
        "body_part": torch.tensor([1.0, 0, 1, 1, 0, 1])[:b],
        "attributes": (torch.rand(b, 6, generator=g) > 0.3).float(),
    }
    return out, targets, masks


def test_masked_labels_contribute_no_gradient() -> None:
    loss_fn = MultiTaskLoss(load_taxonomy("pad_ufes_20"), ("disease", "body_part", "attributes"))
    out, targets, masks = _batch()
    res = loss_fn(out, targets, masks)
    res.total.backward()
    assert set(res.terms) == {"disease", "disease_fused", "body_part", "attributes"}
    bp_grad = out["body_part"].grad
    assert bp_grad is not None
    assert torch.all(bp_grad[masks["body_part"] == 0] == 0)
    assert torch.all(bp_grad[masks["body_part"] == 1].abs().sum(dim=1) > 0)
    a_grad = out["attributes"].grad
    assert a_grad is not None
    assert torch.all(a_grad[masks["attributes"] == 0] == 0)
    assert torch.all(a_grad[masks["attributes"] == 1] != 0)


def test_masked_targets_do_not_change_the_loss() -> None:
    loss_fn = MultiTaskLoss(load_taxonomy("pad_ufes_20"), ("disease", "body_part", "attributes"))
    out, targets, masks = _batch()
    before = loss_fn(out, targets, masks).total
    garbage = {k: v.clone() for k, v in targets.items()}
    garbage["attributes"][masks["attributes"] == 0] = 1 - garbage["attributes"][masks["attributes"] == 0]
    garbage["body_part"][masks["body_part"] == 0] = 0.5
    assert torch.allclose(loss_fn(out, garbage, masks).total, before)


def test_single_label_uses_softmax_and_multilabel_uses_bce() -> None:
    loss_fn = MultiTaskLoss(load_taxonomy("pad_ufes_20"), ("disease", "body_part", "attributes"),
                            {"disease_fused": 0.0})
    out, targets, masks = _batch()
    masks = {k: torch.ones_like(v) for k, v in masks.items()}
    res = loss_fn(out, targets, masks)
    ce = torch.nn.functional.cross_entropy(out["body_part"], targets["body_part"].argmax(1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out["attributes"], targets["attributes"],
                                                               reduction="sum") / 6
    assert torch.allclose(res.terms["body_part"], ce)
    assert torch.allclose(res.terms["attributes"], bce)
    assert "disease_fused" not in res.terms


def test_single_task_counts_disease_once() -> None:
    loss_fn = MultiTaskLoss(load_taxonomy("pad_ufes_20"), ("disease",))
    out, targets, masks = _batch()
    same = {"disease": out["disease"], "disease_fused": out["disease"]}
    assert set(loss_fn(same, targets, masks).terms) == {"disease"}
