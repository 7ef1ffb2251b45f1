"""Shared fixtures for engine tests: a small saved bundle and real PAD-UFES-20 photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.bundle import Bundle, load_bundle, save_bundle
from engine.models import create_model, model_config
from engine.preprocess import PreprocessConfig
from engine.taxonomy import load_taxonomy
from tests.engine.imagefiles import DATA_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"the shared data set is missing at {DATA_DIR}; tests run with ../shared beside the repo")
    return DATA_DIR


@pytest.fixture(scope="session")
def real_photos(data_dir: Path) -> list[Path]:
    photos = sorted((data_dir / "images").glob("*.jpg"))[:6]
    assert len(photos) == 6
    return photos


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = model_config("dermimitformer_tiny")
    model = create_model("dermimitformer_tiny").eval()
    path = tmp_path_factory.mktemp("bundles") / "tiny.dmvb"
    return save_bundle(
        path, model, model_config=cfg, taxonomy=load_taxonomy("pad_ufes_20"),
        preprocess=PreprocessConfig(img_size=96), name="tiny-test", version="1",
        thresholds={"attributes": 0.5}, metrics={"disease": {"macro_f1": 0.1}}, provenance={"untrained": True},
    )


@pytest.fixture(scope="session")
def bundle(tiny_bundle: Path) -> Bundle:
    return load_bundle(tiny_bundle)
