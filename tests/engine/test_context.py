"""The clinical-context encoder: absence is absence however it is spelt, bad values name the field."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from engine.context import CONTEXT_FIELDS, ClinicalContext, ContextEncoding, ContextError
from engine.models import build_model, model_config
from tests.engine.imagefiles import DATA_DIR

SITES = ("face", "back", "chest", "forearm")


@pytest.mark.parametrize("absent", ["", "UNK", "unk", " ", None, math.nan, "NaN", "unknown"])
def test_absent_field_encodes_the_same_however_it_is_spelt(absent: object) -> None:
    enc = ContextEncoding(CONTEXT_FIELDS, SITES)
    row = {"age": 63, "body_part": "face", "itch": 1, "grew": absent, "hurt": "0", "changed": absent,
           "bleed": "yes", "elevation": "False"}
    reference = {**row, "grew": None, "changed": None}
    assert np.array_equal(enc.encode(ClinicalContext.from_mapping(row)),
                          enc.encode(ClinicalContext.from_mapping(reference)))


def test_manifest_rows_encode_as_written() -> None:
    df = pd.read_csv(DATA_DIR / "manifest.csv", dtype=str, keep_default_na=False)
    row = df[(df["grew"] == "") & (df["itch"] == "1")].iloc[0].to_dict()
    ctx = ClinicalContext.from_mapping(row)
    assert ctx.grew is None and ctx.itch is True
    assert ctx.age == float(row["age"]) and ctx.body_part == row["body_part"]
    sites = tuple(sorted(df["body_part"].unique()))
    v = ContextEncoding(CONTEXT_FIELDS, sites).encode(ctx)
    assert v[0] == pytest.approx((float(row["age"]) - 60) / 20)
    assert v[1 + sites.index(row["body_part"])] == 1.0 and v[1:1 + len(sites)].sum() == 1.0
    grew = 1 + len(sites) + 1
    assert v[grew] == 0.0 and v[grew - 1] == 1.0  # itch yes, grew absent


@pytest.mark.parametrize(("row", "field"), [({"age": "sixty"}, "age"), ({"age": 150}, "age"),
                                            ({"itch": "maybe"}, "itch")])
def test_bad_values_raise_naming_the_field(row: dict, field: str) -> None:
    with pytest.raises(ContextError, match=field):
        ClinicalContext.from_mapping(row)


def test_unknown_site_and_forbidden_fields_are_refused() -> None:
    with pytest.raises(ContextError, match="body_part"):
        ContextEncoding(CONTEXT_FIELDS, SITES).encode(ClinicalContext(body_part="moon"))
    with pytest.raises(ContextError, match="biopsed"):
        ContextEncoding(("age", "biopsed"), SITES)


def test_context_model_without_context_is_its_photo_only_pathway() -> None:
    """FiLM with bias-free layers: an all-absent context is exactly no context; a given one changes d'."""
    torch.manual_seed(0)
    cfg = model_config("dermimitformer_tiny", context_fields=CONTEXT_FIELDS, context_sites=SITES)
    model = build_model(cfg).eval()
    for p in model.context_film.parameters():  # the last layer starts at zero: make it non-trivial
        torch.nn.init.normal_(p, std=0.5)
    enc = cfg.context_encoding()
    x = torch.randn(2, 3, 96, 96)
    given = torch.from_numpy(enc.encode_many([ClinicalContext(age=80, body_part="face", bleed=True)] * 2))
    with torch.no_grad():
        photo = model(x)["disease_fused"]
        absent = model(x, torch.from_numpy(enc.encode_many([ClinicalContext()] * 2)))["disease_fused"]
        with_ctx = model(x, given)["disease_fused"]
    assert torch.equal(photo, absent)
    assert not torch.allclose(photo, with_ctx)
