"""The shipped model card's figures are the stored metrics of the run it names, recomputed here."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engine.bundle import load_bundle
from resources import default_model_path, resource_path
from training.card import CARD_METRICS


def _fold_value(fold: dict, dotted: str) -> float | None:
    cur = fold
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None if cur is None else float(cur)


CARDS = sorted(p.stem for p in resource_path("models").glob("*.dmvb"))


def test_the_default_model_has_a_card():
    assert default_model_path().stem in CARDS


@pytest.mark.parametrize("name", CARDS)
def test_card_matches_its_runs_metrics_file(name: str):
    bundle = load_bundle(resource_path("models", f"{name}.dmvb"))
    card_path = resource_path("models", f"{name}.md")
    if bundle.untrained:
        # a placeholder must not come with a card that claims figures
        assert not card_path.exists()
        return
    card = card_path.read_text(encoding="utf-8")
    metrics = json.loads(resource_path("models", f"{name}.cv.json").read_text(encoding="utf-8"))
    run = bundle.provenance["run"]
    assert f"Run: `{run}`" in card
    folds = metrics["folds"]
    assert len(folds) == 5
    checked = 0
    for label, key in CARD_METRICS:
        values = [v for f in folds if (v := _fold_value(f, key)) is not None]
        row = re.search(rf"^\| {re.escape(label)} \| (.+?) \|$", card, flags=re.M)
        assert row, f"card has no row for {label}"
        if not values:
            assert row.group(1) == "n/a"
            continue
        mean, std = 100 * np.mean(values), 100 * np.std(values, ddof=1)
        assert row.group(1) == f"{mean:.1f} ± {std:.1f}", label
        checked += 1
    assert checked >= 10
