from __future__ import annotations

import numpy as np
import pytest

from dermviewer.state.whatif import WhatIfParams, compare
from engine.corrupt import gaussian_blur, jpeg, salt_and_pepper
from engine.prediction import LabelScore, Prediction


def _img() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)


def test_default_is_identity_and_returns_the_same_pixels() -> None:
    p = WhatIfParams()
    img = _img()
    assert p.is_identity()
    assert p.active() == []
    assert np.array_equal(p.apply(img), img)


def test_salt_and_pepper_matches_engine_exactly() -> None:
    img = _img()
    p = WhatIfParams(sp_amount=0.03, sp_black_ratio=0.5, seed=3)
    assert np.array_equal(p.apply(img), salt_and_pepper(img, amount=0.03, black_ratio=0.5, seed=3))
    assert not p.is_identity()


def test_order_is_blur_then_noise_then_jpeg() -> None:
    img = _img()
    p = WhatIfParams(blur_sigma=1.0, sp_amount=0.01, jpeg_quality=50)
    expected = jpeg(salt_and_pepper(gaussian_blur(img, ksize=7, sigma=1.0), amount=0.01, black_ratio=0.75), 50)
    assert np.array_equal(p.apply(img), expected)
    assert len(p.active()) == 3


@pytest.mark.parametrize(("field", "value"), [("sp_amount", 0.06), ("jpeg_quality", 0), ("brightness", 300.0)])
def test_out_of_range_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        WhatIfParams(**{field: value})


def _pred(probs: dict[str, float]) -> Prediction:
    diff = sorted((LabelScore(c, c.lower(), p, malignant=c == "MEL") for c, p in probs.items()),
                  key=lambda s: -s.probability)
    return Prediction(differential=diff, body_parts=[], attributes=[])


def test_compare_flags_a_changed_top_class_and_reports_deltas() -> None:
    clean = _pred({"NEV": 0.6, "MEL": 0.4})
    corrupted = _pred({"NEV": 0.3, "MEL": 0.7})
    cmp = compare(clean, corrupted)
    assert cmp.changed
    assert [r.code for r in cmp.rows] == ["NEV", "MEL"]
    assert cmp.rows[0].delta == pytest.approx(-0.3)
    assert cmp.summary() == "Prediction changed: nev → mel"
    same = compare(clean, clean)
    assert not same.changed
    assert same.summary() == "Prediction unchanged (nev); largest shift 0.0 pts"
    slight = compare(clean, _pred({"NEV": 0.55, "MEL": 0.45}))
    assert not slight.changed
    assert slight.summary() == "Prediction unchanged (nev); largest shift 5.0 pts"
