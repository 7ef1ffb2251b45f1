"""CutMix (DermImitFormer §3, p=0.5, Beta(0.3, 0.3)) mixes every task's targets by the pasted area."""

from __future__ import annotations

import torch

from training.augment import cutmix


def test_cutmix_mixes_every_head_by_pasted_area() -> None:
    b, h, w = 5, 40, 48
    images = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, h, w).contiguous()
    targets = {
        "disease": torch.nn.functional.one_hot(torch.arange(b) % 6, 6).float(),
        "body_part": torch.nn.functional.one_hot((torch.arange(b) * 3) % 14, 14).float(),
        "attributes": (torch.arange(b * 6).view(b, 6) % 3 == 0).float(),
    }
    masks = {"disease": torch.ones(b), "body_part": torch.tensor([1.0, 1, 0, 1, 1]),
             "attributes": torch.ones(b, 6)}
    masks["attributes"][1, 2] = 0
    seen = 0
    for seed in range(20):
        res = cutmix(images, targets, masks, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(seed))
        assert res.perm is not None and res.box is not None
        for i in range(b):
            own = (res.images[i] == i).float().mean().item()
            if int(res.perm[i]) != i:
                assert abs(own - res.lam) < 1e-6  # the area fraction that stayed is exactly lambda
        for k, t in targets.items():
            expected = res.lam * t + (1 - res.lam) * t[res.perm]
            assert torch.allclose(res.targets[k], expected)
            assert torch.equal(res.masks[k], masks[k] * masks[k][res.perm])
        seen += 0 < res.lam < 1
    assert seen > 10


def test_cutmix_probability_zero_is_identity() -> None:
    images = torch.rand(4, 3, 8, 8)
    t = {"disease": torch.eye(4, 6)}
    m = {"disease": torch.ones(4)}
    res = cutmix(images, t, m, p=0.0, alpha=0.3, generator=torch.Generator().manual_seed(0))
    assert res.images is images and res.lam == 1.0
