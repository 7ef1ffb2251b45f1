"""Flip TTA in the Predictor: the averaged probabilities of the photo and its mirror, computed independently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from engine.bundle import load_bundle, save_bundle
from engine.imageio import load_image
from engine.inference import Predictor
from engine.preprocess import preprocess


def test_tta_averages_photo_and_mirror(tiny_bundle: Path, real_photos: list[Path], tmp_path: Path) -> None:
    b = load_bundle(tiny_bundle)
    path = save_bundle(tmp_path / "tta.dmvb", b.build_model(), model_config=b.model_config, taxonomy=b.taxonomy,
                       preprocess=dataclasses.replace(b.preprocess, tta_hflip=True), name="tta", version="1",
                       thresholds=b.thresholds, metrics={}, provenance={"untrained": True})
    rgb = load_image(real_photos[1])
    x = torch.from_numpy(preprocess(rgb, b.preprocess))[None]
    model = b.build_model().eval()
    with torch.no_grad():
        p = (model(x)["disease_fused"].softmax(-1) + model(x.flip(-1))["disease_fused"].softmax(-1)) / 2
        a = (model(x)["attributes"].sigmoid() + model(x.flip(-1))["attributes"].sigmoid()) / 2
    codes = [c.code for c in b.taxonomy.head("disease").classes]
    for backend in ("torch", "onnx"):
        pred = Predictor(path, device="cpu", backend=backend).predict(rgb)
        got = np.array([next(s.probability for s in pred.differential if s.code == c) for c in codes])
        assert np.allclose(got, p[0].numpy(), atol=1e-4), backend
        assert np.allclose([s.probability for s in pred.attributes], a[0].numpy(), atol=1e-4), backend
    plain = Predictor(tiny_bundle, device="cpu").predict(rgb)
    assert not np.allclose([s.probability for s in plain.differential],
                           [s.probability for s in pred.differential], atol=1e-6)
