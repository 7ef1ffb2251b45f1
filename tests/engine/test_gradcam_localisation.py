"""On real photos with real lesion masks, the shipped default's Grad-CAM points at the lesion more often with
the target layer and method of ``engine.explain.default_target_layer`` than with the first release's choice
(the tokens entering the disease head's last attention block, classic Grad-CAM).

Measured on all 640 masked photos (issue 11), old choice -> new: the Lite0 default 15.9 % -> 59.7 %, the Lite2
default 29.4 % -> 75.9 % (both in-sample; Lite2 5-fold out-of-sample 22.3 % -> 77.8 %). The test asks for at
least half the smaller gap (0.44) on a fixed set of 30 photos (the first 30 masked photos by name), through
the app's own loading and preprocessing, with whichever default is shipped.
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
N_PHOTOS = 30
MEASURED_GAP = 0.597 - 0.159  # pointing game, new minus old choice, Lite0 default, all 640 masked photos


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
    assert new_hits.mean() - old_hits.mean() >= MEASURED_GAP / 2, (new_hits.mean(), old_hits.mean())
