"""The shipped lesion finder's card says what its CV run measured (issue 15): every figure of the card's table
is the stored CV summary's, and the ONNX file's own metadata carries the same figures and post-processing."""

from __future__ import annotations

import json

import pytest

import resources
from engine.lesions import LesionFinder
from engine.metrics import format_mean_std
from training.lesion_card import ROWS


@pytest.fixture(scope="module")
def shipped() -> tuple[dict, str, LesionFinder]:
    models = resources.resource_path("models")
    cv = json.loads((models / "lesion_finder.cv.json").read_text(encoding="utf-8"))
    card = (models / "lesion_finder.md").read_text(encoding="utf-8")
    return cv, card, LesionFinder(models / "lesion_finder.onnx")


def test_card_figures_are_the_cv_summary(shipped) -> None:
    cv, card, _ = shipped
    for label, key in ROWS:
        s = cv["summary"][key]
        assert f"| {label} | {format_mean_std(s['mean'], s['std'], percent=False, digits=3)} |" in card
    assert f"{cv['config']['folds']} folds" in card


def test_the_file_is_the_one_the_cv_describes(shipped) -> None:
    cv, _, finder = shipped
    for key in ("size", "threshold", "min_area", "tta", "fill_holes"):
        assert finder.meta[key] == cv["config"][key], key
    for key in ("dice", "iou", "boundary_f", "box_iou"):
        assert finder.meta["cv"][key]["mean"] == pytest.approx(cv["summary"][key]["mean"])
