"""Shared fixtures: real PAD-UFES-20 photos and the bundled default model."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pad_ufes_20"
PHOTO = DATA / "images" / "PAT_100_393_898.jpg"


@pytest.fixture(scope="session")
def photo() -> Path:
    if not PHOTO.is_file():
        pytest.fail(f"PAD-UFES-20 photo not found at {PHOTO}; tests run with ../shared beside the repo")
    return PHOTO


@pytest.fixture(scope="session")
def predictor():
    import resources
    from engine.inference import Predictor

    return Predictor(resources.default_model_path(), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's real settings."""
    monkeypatch.setenv("DERMVIEWER_CONFIG_DIR", str(tmp_path / "config"))
