"""The LSM-to-mask loss wired into training: lesion grids in step with the cached views, and it trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from trainhelp import DATA, tiny_config

from engine.metrics.localisation import lesion_coverage
from training.augment import TrainTransform
from training.config import ConfigError, load_config
from training.data.dataset import PackDataset
from training.lsm_mask_loss import lesion_cells, lesion_view_grids, pack_lesions
from training.run import build_model_from_config, fit, make_dataset

MASKS = DATA / "masks"


def test_the_photo_is_the_same_with_and_without_the_lesion_channel(tiny_pack) -> None:
    cfg = load_config(None, {"augment": {"corruptions": ["salt_and_pepper"], "corruption_p": 0.5}})
    tf = TrainTransform(cfg.augment, 96, cfg.data.mean, cfg.data.std)
    ds = PackDataset(tiny_pack, np.arange(len(tiny_pack)), [], img_size=96, mean=cfg.data.mean, std=cfg.data.std)
    lesions = pack_lesions(tiny_pack, MASKS)
    i = next(k for k, m in enumerate(lesions) if m is not None)
    rgb, lesion = ds.image(i), lesions[i]
    assert lesion is not None and lesion.shape == rgb.shape[:2]
    for seed in range(6):
        plain = tf(rgb, np.random.default_rng([0, seed, i]))
        photo, warped = tf.with_lesion(rgb, lesion, np.random.default_rng([0, seed, i]))
        assert torch.equal(plain, photo)
        assert warped is not None and warped.shape == (96, 96)
        assert float(warped.min()) >= 0.0 and float(warped.max()) <= 1.0


def test_the_lesion_moves_with_the_flip(tiny_pack) -> None:
    """No crop, rotation or colour; an always-on horizontal flip: the warped lesion is the flipped mask."""
    cfg = load_config(None, {"augment": {"crop": "none", "rotation": 0, "hflip": 1.0, "vflip": 0.0, "brightness": 0,
                                         "contrast": 0, "saturation": 0, "hue": 0}})
    size = tiny_pack.size
    tf = TrainTransform(cfg.augment, size, cfg.data.mean, cfg.data.std)
    ds = PackDataset(tiny_pack, np.arange(len(tiny_pack)), [], img_size=size, mean=cfg.data.mean, std=cfg.data.std)
    lesions = pack_lesions(tiny_pack, MASKS)
    # a photo whose lesion is not left-right symmetric, so that the flip shows
    i = max((k for k, m in enumerate(lesions) if m is not None),
            key=lambda k: float(np.abs(lesions[k] - lesions[k][:, ::-1]).sum()))  # type: ignore[index]
    lesion = lesions[i]
    assert lesion is not None
    _, warped = tf.with_lesion(ds.image(i), lesion, np.random.default_rng(0))
    assert warped is not None
    flipped = lesion[:, ::-1]
    assert np.abs(warped.numpy() - flipped).max() <= 1.0 / 255 + 1e-6
    assert np.abs(warped.numpy() - lesion).max() > 0.5


def test_a_pack_rows_mask_is_its_photos_lesion_squashed(tiny_pack) -> None:
    from engine.masks import MaskSource

    lesions = pack_lesions(tiny_pack, MASKS)
    source = MaskSource.open(MASKS)
    for key, got in zip(tiny_pack.ids, lesions, strict=True):
        if key not in source:
            assert got is None
            continue
        expected = lesion_coverage(source.load(key), (tiny_pack.size, tiny_pack.size))
        assert got is not None and np.allclose(got, expected)
    assert sum(m is not None for m in lesions) >= len(lesions) - 3


def test_lesion_grids_follow_each_cached_view(tiny_pack, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, optim={"frozen_stages": 2})
    lesions = pack_lesions(tiny_pack, MASKS)
    grids = lesion_view_grids(cfg, tiny_pack, lesions, img_size=112, grid=(7, 7), views=2,
                              cache_dir=tmp_path / "c", key="k", log=lambda _m: None)
    assert grids.shape == (2, len(tiny_pack), 7, 7)
    tf = TrainTransform(cfg.augment, 112, cfg.data.mean, cfg.data.std)
    ds = PackDataset(tiny_pack, np.arange(len(tiny_pack)), [], img_size=112, mean=cfg.data.mean, std=cfg.data.std)
    for e in (0, 1):
        for i, m in enumerate(lesions):
            if m is None:
                assert np.isnan(grids[e, i]).all()
                continue
            _, warped = tf.with_lesion(ds.image(i), m, np.random.default_rng([cfg.train.seed, e, i]))
            assert warped is not None
            assert np.allclose(grids[e, i], lesion_cells(warped.numpy(), (7, 7)), atol=1e-3)
    assert not np.allclose(np.nan_to_num(grids[0]), np.nan_to_num(grids[1]))  # the views differ
    again = lesion_view_grids(cfg, tiny_pack, lesions, img_size=112, grid=(7, 7), views=2,
                              cache_dir=tmp_path / "c", key="k", log=lambda _m: None)
    assert np.array_equal(np.asarray(again), np.asarray(grids), equal_nan=True)  # read back from the cache


def _lesion_mass(model: torch.nn.Module, cfg, data, lesions) -> float:
    """Mean share of the disease LSM's score mass on the lesion, over the masked photos (evaluation input)."""
    rows = np.array([i for i, m in enumerate(lesions) if m is not None])
    ds = make_dataset(cfg, data, rows, model.cfg, train=False)
    model.eval()
    with torch.no_grad():
        out = model(torch.stack([ds[k]["image"] for k in range(len(rows))]))
    scores = out["lsm_disease"].float().clamp_min(0)
    p = scores / scores.sum(dim=1, keepdim=True)
    grid = tuple(model.cfg.grid_size)
    cells = torch.from_numpy(np.stack([lesion_cells(lesions[i], grid).reshape(-1) for i in rows]))
    return float((p * cells).sum(dim=1).mean())


def _fit_tiny(tiny_pack, tmp_path: Path, loss: dict):
    """The tiny model trained 6 epochs on cached views with the given mask-loss weights (same seed each time)."""
    name = "-".join(f"{k}{v}" for k, v in loss.items())
    cfg = tiny_config(tmp_path / name, tiny_pack.path, optim={"frozen_stages": 2, "lr": 5e-3}, train={"epochs": 6},
                      loss=loss, data={"lesion_masks": str(MASKS)}, augment={"cutmix_p": 0.0},
                      model={"name": "dermimitformer_tiny", "overrides": {"pretrained": True}})
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
    out = fit(cfg, tiny_pack, np.arange(len(tiny_pack)), tmp_path / f"run-{name}", model=model, mcfg=mcfg)
    return cfg, mcfg, out.model


def test_training_with_the_mask_loss_moves_the_lsm_mass_onto_the_lesion(tiny_pack, tmp_path: Path) -> None:
    """Same seed, data and epochs; only ``loss.lsm_mask_weight`` differs. Fails if the grids never arrive."""
    lesions = pack_lesions(tiny_pack, MASKS)
    mass = {}
    for w in (0.0, 3.0):
        cfg, _, model = _fit_tiny(tiny_pack, tmp_path, {"lsm_mask_weight": w})
        mass[w] = _lesion_mass(model, cfg, tiny_pack, lesions)
    assert mass[3.0] > mass[0.0] + 0.02, mass


def _cam_lesion_mass(model: torch.nn.Module, cached, lesions_grid, rows) -> float:
    """Mean share of the true class's HiResCAM (of the cached features) on the lesion, over ``rows``."""
    items = [cached[k] for k in rows]
    x = torch.stack([it["image"] for it in items]).requires_grad_(True)
    model.eval()
    out = model(x)["disease_fused"]
    y = torch.stack([it["targets"]["disease"] for it in items]).argmax(1)
    (g,) = torch.autograd.grad(out.gather(1, y[:, None]).sum(), x)
    cam = torch.relu((g * x).sum(1))
    cam = torch.nn.functional.adaptive_avg_pool2d(cam[:, None], lesions_grid.shape[-2:])[:, 0].reshape(len(rows), -1)
    cells = torch.from_numpy(np.asarray(lesions_grid[[items[k]["index"] for k in range(len(rows))]], np.float32))
    share = (cam / cam.sum(1, keepdim=True).clamp_min(1e-12) * cells.reshape(len(rows), -1)).sum(1)
    return float(share.mean())


def test_training_with_the_cam_loss_moves_the_cam_onto_the_lesion(tiny_pack, tmp_path: Path) -> None:
    """Same seed, data and epochs; only ``loss.cam_mask_weight`` differs; measured on the first cached view."""
    from training.frozen_prefix import CachedViewDataset, frozen_prefix, view_cache

    lesions = pack_lesions(tiny_pack, MASKS)
    rows = np.arange(len(tiny_pack))
    mass = {}
    for w in (0.0, 3.0):
        cfg, mcfg, model = _fit_tiny(tiny_pack, tmp_path, {"cam_mask_weight": w})
        with frozen_prefix(model, 2) as prefix:
            views = view_cache(cfg, tiny_pack, prefix, stem="lite0", img_size=mcfg.img_size,
                               cache_dir=tmp_path / "cache", log=lambda _m: None)
            grids = lesion_view_grids(cfg, tiny_pack, lesions, img_size=mcfg.img_size, grid=tuple(mcfg.grid_size),
                                      views=len(views), log=lambda _m: None)
            cached = CachedViewDataset(make_dataset(cfg, tiny_pack, rows, mcfg, train=True), views, grids)
            mass[w] = _cam_lesion_mass(model, cached, grids[0], list(range(len(rows))))
    assert mass[3.0] > mass[0.0] + 0.02, mass


@pytest.mark.parametrize(("sections", "message"), [
    ({"data": {}}, "data.lesion_masks"),
    ({"data": {"lesion_masks": str(MASKS)}, "optim": {"frozen_stages": 0}}, "frozen_stages"),
    ({"data": {"lesion_masks": str(MASKS)}, "augment": {"cutmix_p": 0.5}}, "CutMix"),
])
def test_the_mask_loss_refuses_configs_it_cannot_serve(tiny_pack, tmp_path: Path, sections, message) -> None:
    base = {"optim": {"frozen_stages": 2}, "loss": {"lsm_mask_weight": 1.0}, "augment": {"cutmix_p": 0.0}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    cfg = tiny_config(tmp_path, tiny_pack.path, **base)
    with pytest.raises(ConfigError, match=message):
        fit(cfg, tiny_pack, np.arange(len(tiny_pack)), tmp_path / "run")
