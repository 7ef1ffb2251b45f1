"""Training on cached prefix views is the same computation as online augmentation with the prefix frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from trainhelp import tiny_config

from training.frozen_prefix import CachedViewDataset, frozen_prefix, view_cache
from training.run import build_model_from_config, fit, make_dataset


def test_cached_views_reproduce_each_epochs_augmented_photo(tiny_pack, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, optim={"frozen_stages": 2}, train={"epochs": 2},
                      augment={"corruptions": ["salt_and_pepper"], "corruption_p": 0.5})
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
    model.eval()
    keys = set(model.state_dict())
    rows = np.arange(len(tiny_pack))
    online = make_dataset(cfg, tiny_pack, rows, mcfg, train=True)
    with torch.no_grad():
        expected = {}
        for epoch in (0, 1):
            online.set_epoch(epoch)
            expected[epoch] = model(torch.stack([online[k]["image"] for k in (0, 3)]))["disease_fused"]
        with frozen_prefix(model, 2) as prefix:
            assert set(model.state_dict()) < keys  # the prefix is out of the model while training
            views = view_cache(cfg, tiny_pack, prefix, stem="lite0", img_size=mcfg.img_size,
                               cache_dir=tmp_path / "cache", log=lambda _m: None)
            cached = CachedViewDataset(online, views)
            for epoch in (0, 1):
                cached.set_epoch(epoch)
                got = model(torch.stack([cached[k]["image"] for k in (0, 3)]))["disease_fused"]
                assert torch.allclose(got, expected[epoch], atol=2e-2)  # fp16 cache
            cached.set_epoch(0)
            other = model(torch.stack([cached[k]["image"] for k in (0, 3)]))["disease_fused"]
            assert not torch.allclose(other, expected[1], atol=2e-2)  # epochs differ: the views are per epoch
    assert set(model.state_dict()) == keys  # and back afterwards
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_fit_with_a_frozen_prefix_trains_only_the_later_layers(tiny_pack, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_pack.path, optim={"frozen_stages": 2})
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = fit(cfg, tiny_pack, np.arange(len(tiny_pack)), tmp_path / "run", model=model, mcfg=mcfg)
    after = out.model.state_dict()
    assert set(after) == set(before)
    assert torch.equal(after["backbone.stem.0.weight"], before["backbone.stem.0.weight"])  # conv_stem frozen
    assert torch.equal(after["backbone.stem.3.0.conv_pw.weight"], before["backbone.stem.3.0.conv_pw.weight"])
    assert not torch.equal(after["backbone.stem.4.0.conv_pw.weight"], before["backbone.stem.4.0.conv_pw.weight"])


def test_validation_runs_the_whole_model_on_pixels(tiny_pack, tmp_path: Path) -> None:
    """A validation split scores the restored model on pixels; the best epoch's weights come back whole."""
    cfg = tiny_config(tmp_path, tiny_pack.path, optim={"frozen_stages": 2}, train={"epochs": 2})
    torch.manual_seed(0)
    model, mcfg = build_model_from_config(cfg, tiny_pack.taxonomy)
    keys = set(model.state_dict())
    rows = np.arange(len(tiny_pack))
    out = fit(cfg, tiny_pack, rows[:12], tmp_path / "run", val_idx=rows[12:], model=model, mcfg=mcfg)
    assert set(out.model.state_dict()) == keys
    assert out.val_predictions is not None and len(out.val_predictions.indices) == len(rows) - 12
    assert out.result.best_checkpoint is not None


def test_a_frozen_prefix_cv_fold_loads_whole(tiny_pack, tmp_path: Path) -> None:
    """Fold checkpoints are written while the prefix is out; loading one puts the pretrained prefix back."""
    from training.run import load_fold_model, run_cv

    cfg = tiny_config(tmp_path, tiny_pack.path, optim={"frozen_stages": 2}, cv={"final_fit": False},
                      model={"name": "dermimitformer_tiny", "overrides": {"pretrained": True}})
    run = run_cv(cfg, out=tmp_path / "cv", log=lambda *_: None)
    model, _ = load_fold_model(run / "fold0", tiny_pack.taxonomy)
    fresh, _ = build_model_from_config(cfg, tiny_pack.taxonomy)
    ckpt = torch.load(run / "fold0" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert "backbone.stem.0.weight" not in ckpt
    assert torch.equal(model.state_dict()["backbone.stem.0.weight"], fresh.state_dict()["backbone.stem.0.weight"])
    key = "backbone.stem.4.0.conv_pw.weight"
    assert torch.equal(model.state_dict()[key], ckpt[key].float())
