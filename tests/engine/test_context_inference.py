"""Clinical context through the prediction path: torch and ONNX Runtime agree, the CLI's flags reach the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.bundle import save_bundle
from engine.cli import main as predict_main
from engine.context import CONTEXT_FIELDS, ClinicalContext
from engine.inference import Predictor
from engine.models import build_model, model_config
from engine.preprocess import PreprocessConfig
from engine.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def context_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tax = load_taxonomy("pad_ufes_20")
    sites = tuple(c.code for c in tax.head("body_part").classes)
    cfg = model_config("dermimitformer_tiny", context_fields=CONTEXT_FIELDS, context_sites=sites)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.context_film.parameters():  # trained FiLM weights are not zero; make these matter too
        torch.nn.init.normal_(p, std=0.5)
    path = tmp_path_factory.mktemp("ctx") / "ctx.dmvb"
    return save_bundle(path, model, model_config=cfg, taxonomy=tax, preprocess=PreprocessConfig(img_size=96),
                       name="tiny-context", version="1", thresholds={"attributes": 0.5}, metrics={},
                       provenance={"untrained": True})


def _probs(pred) -> np.ndarray:
    return np.array([s.probability for s in sorted(pred.differential, key=lambda s: s.code)])


def test_torch_and_onnx_agree_with_and_without_context(context_bundle: Path, real_photos: list[Path]) -> None:
    ctx = ClinicalContext(age=71, body_part="face", bleed=True, grew=False)
    t, o = Predictor(context_bundle, device="cpu"), Predictor(context_bundle, device="cpu", backend="onnx")
    for c in (None, ctx):
        pt, po = t.predict(real_photos[0], c), o.predict(real_photos[0], c)
        assert np.allclose(_probs(pt), _probs(po), atol=1e-4)
    photo_only, with_ctx = t.predict(real_photos[0]), t.predict(real_photos[0], ctx)
    assert not np.allclose(_probs(photo_only), _probs(with_ctx), atol=1e-3)
    assert with_ctx.context_used == ("age", "body_part", "grew", "bleed")
    assert photo_only.context_used == ()
    # an all-unknown context is the photo-only answer, exactly
    assert np.array_equal(_probs(t.predict(real_photos[0], ClinicalContext())), _probs(photo_only))


def test_cli_flags_and_manifest_reach_the_model(context_bundle: Path, real_photos: list[Path], data_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(real_photos[0])
    assert predict_main(["--model", str(context_bundle), "--json", photo]) == 0
    bare = json.loads(capsys.readouterr().out)[0]
    assert predict_main(["--model", str(context_bundle), "--json", "--age", "71", "--site", "face", "--bleed", "yes",
                         photo]) == 0
    flagged = json.loads(capsys.readouterr().out)[0]
    assert bare["context_used"] == [] and flagged["context_used"] == ["age", "body_part", "bleed"]
    assert bare["differential"] != flagged["differential"]
    assert predict_main(["--model", str(context_bundle), "--json", "--context-from",
                         str(data_dir / "manifest.csv"), photo]) == 0
    from_manifest = json.loads(capsys.readouterr().out)[0]
    assert {"age", "body_part"} <= set(from_manifest["context_used"])


def test_cli_refuses_a_bad_flag_naming_it(context_bundle: Path, real_photos: list[Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert predict_main(["--model", str(context_bundle), "--itch", "sometimes", str(real_photos[0])]) == 2
    assert "itch" in capsys.readouterr().err
