"""Predictor and dermviewer-predict on real PAD-UFES-20 photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.bundle import load_bundle
from engine.cli import main
from engine.imageio import load_image
from engine.inference import Predictor
from engine.preprocess import preprocess


def test_predictions_are_well_formed_and_match_the_model(tiny_bundle: Path, real_photos: list[Path]):
    pred = Predictor(tiny_bundle, device="cpu")
    bundle = load_bundle(tiny_bundle)
    model = bundle.build_model()
    for path in real_photos[:3]:
        p = pred.predict(path)
        probs = [s.probability for s in p.differential]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert sum(s.probability for s in p.body_parts) == pytest.approx(1.0, abs=1e-5)  # single-label head
        assert sum(s.positive for s in p.body_parts) == 1
        assert [s.code for s in p.attributes] == bundle.taxonomy.head("attributes").codes
        assert all(s.positive == (s.probability >= 0.5) for s in p.attributes)
        assert p.lsm["disease"].shape == (6, 6) and len(p.selected["disease"]) == 4
        img = load_image(path)
        assert p.image_size == img.shape[:2]
        with torch.no_grad():
            ref = model(torch.from_numpy(preprocess(img, bundle.preprocess))[None])
        ref_probs = ref["disease_fused"].softmax(-1)[0].numpy()
        assert np.allclose(p.disease_probs, ref_probs, atol=1e-5)
        top = bundle.taxonomy.head("disease").codes[int(ref_probs.argmax())]
        assert p.top.code == top
        sel = sorted(p.selected["disease"])
        assert sel == sorted(torch.topk(ref["lsm_disease"][0], 4).indices.tolist())


def test_batch_equals_single(tiny_bundle: Path, real_photos: list[Path]):
    pred = Predictor(tiny_bundle, device="cpu")
    batch = pred.predict_batch(real_photos[:3])
    for path, b in zip(real_photos[:3], batch, strict=True):
        s = pred.predict(path)
        assert np.allclose(s.disease_probs, b.disease_probs, atol=1e-5)


def test_iter_predict_reports_progress_and_bad_files(tiny_bundle: Path, real_photos: list[Path], tmp_path: Path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    steps = list(Predictor(tiny_bundle, device="cpu").iter_predict([real_photos[0], bad, real_photos[1]], batch_size=2))
    assert [s.done for s in steps] == [1, 2, 3] and all(s.total == 3 for s in steps)
    by_src = {Path(s.source): s for s in steps}
    assert by_src[bad].error is not None and by_src[bad].prediction is None
    assert by_src[real_photos[1]].prediction is not None


def test_cli_json_on_photos_originals_and_a_bad_file(tiny_bundle, data_dir, real_photos, tmp_path, capsys):
    original = sorted((data_dir / "originals").glob("*.png"))[0]
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    args = [str(real_photos[0]), str(bad), str(original)]
    code = main([*args, "--model", str(tiny_bundle), "--json", "--device", "cpu"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # the bad file fails the run, after the others are done
    assert [o["image"] for o in out] == args
    assert "error" in out[1] and "bad.png" not in out[1]["error"] and out[1]["error"]
    for o in (out[0], out[2]):
        probs = [d["probability"] for d in o["differential"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
        assert set(o["differential"][0]) == {"code", "name", "probability"}
        assert set(o["body_parts"][0]) == {"code", "name", "probability", "positive"}
        assert len(o["attributes"]) == 6 and "timings_ms" in o
    direct = Predictor(tiny_bundle, device="cpu").predict(original)
    assert out[2]["differential"][0]["code"] == direct.top.code


def test_cli_text_uses_the_bundled_default_and_says_it_is_untrained(real_photos, capsys):
    from resources import default_model_path

    code = main([str(real_photos[0]), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    assert str(real_photos[0]) in captured.out and "%" in captured.out
    if load_bundle(default_model_path()).untrained:
        assert "UNTRAINED" in captured.err


def test_cli_reports_a_bad_model(tmp_path, real_photos, capsys):
    bad = tmp_path / "m.dmvb"
    bad.write_bytes(b"12345")
    assert main([str(real_photos[0]), "--model", str(bad)]) == 2
    assert "m.dmvb" in capsys.readouterr().err


def test_unknown_device_is_a_clear_error(tiny_bundle):
    from engine.errors import ModelConfigError

    with pytest.raises(ModelConfigError, match="device"):
        Predictor(tiny_bundle, device="tpu")
