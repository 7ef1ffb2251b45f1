"""On real photos with real lesion masks, the shipped default's Grad-CAM points at the lesion more often with
the target layer and method of ``engine.explain.default_target_layer`` than with the first release's choice
(the tokens entering the disease head's last attention block, classic Grad-CAM).

Measured (issue 11), old choice -> new, pointing game: the Lite0 default 15.9 % -> 59.7 % and the first Lite2
default 29.4 % -> 75.9 % (in-sample, all 640 masked photos); the Lite2 default trained with the mask losses
(shipped now), 5-fold out-of-sample 41.4 % -> 85.0 %, and in-sample 63.8 % -> 85.8 % (first 120 masked photos
by name: 73.3 % -> 84.2 %). The mask losses made the token map point better, so the old gap no longer holds
on a small sample; the test asks, on those 120 photos through the app's own loading and preprocessing, that
the new choice points at the lesion on at least 75 % of them and on at least 5 points more than the old.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.bundle import load_bundle
from engine.explain import default_target_layer, grad_cam
from engine.imageio import load_image
from engine.masks import MaskSource
from engine.metrics import pointing_game
from engine.preprocess import preprocess_batch
from tests.engine.imagefiles import DATA_DIR

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models" / "default.dmvb"
N_PHOTOS = 120


def test_the_new_target_layer_points_at_the_lesion_more_often_than_the_old_one() -> None:
    if not (DATA_DIR / "masks" / "masks.csv").is_file():
        pytest.fail(f"the lesion masks are missing at {DATA_DIR / 'masks'}")
    masks = MaskSource.open(DATA_DIR / "masks" / "masks.csv")
    photos = sorted(p for p in (DATA_DIR / "images").glob("*.jpg") if p in masks)[:N_PHOTOS]
    assert len(photos) == N_PHOTOS
    bundle = load_bundle(SHIPPED)
    model = bundle.build_model("cpu")
    images = [load_image(p) for p in photos]
    x = torch.from_numpy(preprocess_batch(images, bundle.preprocess))
    with torch.no_grad():
        top = model(x)["disease_fused"].argmax(dim=1).tolist()
    old_layer = model.heads["disease"].blocks[-1].norm1
    assert default_target_layer(model) is not old_layer
    new = grad_cam(model, x, "disease", top)
    old = grad_cam(model, x, "disease", top, target_layer=old_layer, method="gradcam")
    lesions = [masks.load(p, im.shape[:2]) for p, im in zip(photos, images, strict=True)]
    new_hits = np.array([pointing_game(c, m).hit for c, m in zip(new, lesions, strict=True)])
    old_hits = np.array([pointing_game(c, m).hit for c, m in zip(old, lesions, strict=True)])
    assert new_hits.mean() >= 0.75, (new_hits.mean(), old_hits.mean())
    assert new_hits.mean() - old_hits.mean() >= 0.05, (new_hits.mean(), old_hits.mean())
