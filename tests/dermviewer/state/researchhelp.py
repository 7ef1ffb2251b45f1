"""Shared by the research-mode state tests: the dataset spec and the default bundle's out-of-fold file."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "configs" / "data" / "pad_ufes_20.yaml"


def default_oof() -> Path:
    """The out-of-fold file shipped beside the default bundle, whatever the bundle's stem."""
    import resources
    from dermviewer.state.research.oof import oof_source_of
    from engine.bundle import read_bundle_header

    oof, _ = oof_source_of(read_bundle_header(resources.default_model_path()))
    if oof is None:
        pytest.fail("the default bundle ships no <stem>.oof.h5 beside it")
    return oof
