"""The bundled models (the default and its distilled student) on the real full-resolution originals of PAD-UFES-20."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bundle import load_bundle
from engine.inference import Predictor
from engine.taxonomy import load_taxonomy
from resources import default_model_path, resource_path

SHIPPED = sorted(resource_path("models").glob("*.dmvb"))


def test_the_default_is_among_the_shipped_bundles():
    assert default_model_path() in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_bundle_predicts_the_originals(data_dir: Path, path: Path):
    bundle = load_bundle(path)
    assert not bundle.untrained
    assert bundle.taxonomy == load_taxonomy("pad_ufes_20")
    assert bundle.path is not None and bundle.path.stat().st_size <= 50 * 1024 * 1024
    originals = sorted((data_dir / "originals").glob("*.png"))
    assert len(originals) == 8
    predictor = Predictor(bundle, device="cpu")
    for step in predictor.iter_predict(originals, batch_size=4):
        assert step.error is None, step.error
        p = step.prediction
        assert p is not None
        assert [s.code for s in sorted(p.differential, key=lambda s: s.code)] == bundle.taxonomy.head("disease").codes
        assert sum(s.probability for s in p.differential) == pytest.approx(1.0, abs=1e-5)
        assert sum(s.probability for s in p.body_parts) == pytest.approx(1.0, abs=1e-5)
        assert [s.code for s in p.attributes] == bundle.taxonomy.head("attributes").codes
        assert all(0.0 <= s.probability <= 1.0 for s in p.attributes)
        assert p.lsm["disease"].shape == bundle.model_config.grid_size
