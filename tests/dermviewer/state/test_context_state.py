"""The clinical context in the review, without a display: a synchronous executor and a manual timer decide when
each job runs. The model is the shipped default once it takes the context, until then a small, randomly
initialised but real context bundle (FiLM weights drawn so the context matters). Every photo-plus-context
differential checked here is compared with a separately built ``Predictor`` on the same photo and context."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import resources
from dermviewer.state.app_state import AppState
from dermviewer.state.context import ContextReview, prefill_context
from dermviewer.state.coordinator import Coordinator
from dermviewer.state.executor import Lane, ManualExecutor, ManualTimer
from dermviewer.state.metadata import manifest_row
from dermviewer.state.model import ModelHost
from dermviewer.state.settings import Settings
from engine.bundle import load_bundle, read_bundle_header, save_bundle
from engine.context import CONTEXT_FIELDS, ClinicalContext
from engine.imageio import load_image
from engine.inference import Predictor

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20"
# A manifest row with every context field known (age 14, face, all six "no"), and a second photo.
FIRST, SECOND = DATA / "images" / "PAT_100_393_898.jpg", DATA / "images" / "PAT_1022_115_132.jpg"


def default_takes_context() -> bool:
    return bool(read_bundle_header(resources.default_model_path()).model_config.context_fields)


def context_model_path(folder: Path) -> Path:
    """The shipped default if it takes the clinical context; else a tiny real context bundle saved in ``folder``."""
    if default_takes_context():
        return resources.default_model_path()
    from engine.models import build_model, model_config
    from engine.preprocess import PreprocessConfig
    from engine.taxonomy import load_taxonomy

    tax = load_taxonomy("pad_ufes_20")
    sites = tuple(c.code for c in tax.head("body_part").classes)
    cfg = model_config("dermimitformer_tiny", context_fields=CONTEXT_FIELDS, context_sites=sites)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.context_film.parameters():  # trained FiLM weights are not zero; make these matter too
        torch.nn.init.normal_(p, std=0.5)
    return save_bundle(folder / "ctx.dmvb", model, model_config=cfg, taxonomy=tax,
                       preprocess=PreprocessConfig(img_size=96), name="tiny-context", version="1",
                       thresholds={"attributes": 0.5}, metrics={}, provenance={"untrained": True})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def context_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for p in (FIRST, SECOND):
        if not p.is_file():
            pytest.fail(f"PAD-UFES-20 photo not found: {p}")
    return context_model_path(tmp_path_factory.mktemp("context-model"))


@pytest.fixture(scope="module")
def context_host(context_model: Path) -> ModelHost:
    host = ModelHost()
    host.load(context_model, "cpu", "torch")
    assert host.predictor.context_encoding is not None
    return host


@pytest.fixture(scope="module")
def reference(context_model: Path) -> Predictor:
    """Built separately from the coordinator's model, so agreement is not one object compared with itself."""
    return Predictor(load_bundle(context_model), device="cpu")


class Setup:
    def __init__(self, host: ModelHost) -> None:
        state = AppState(Settings(device="cpu"))
        state.model = host
        self.ex, self.timer, self.clock = ManualExecutor(), ManualTimer(), Clock()
        self.co = Coordinator(state, self.ex, clock=self.clock)
        self.review = ContextReview(self.co, timer=self.timer, debounce_s=0.3, clock=self.clock)
        self.shown: list = []
        self.review.comparison_changed.connect(self.shown.append)
        self.messages: list[tuple[str, str]] = []
        state.message.connect(lambda level, text: self.messages.append((level, text)))

    def open(self, path: Path) -> None:
        self.co.open_paths([path])
        self.ex.run_pending()

    def edit(self, name: str, value: object) -> bool:
        ok = self.review.set_field(name, value)
        self.clock.now += 0.5  # quiet for longer than the debounce delay
        self.timer.fire()
        return ok


def _probs(p) -> np.ndarray:
    return np.asarray(p.disease_probs)


def _spy(host: ModelHost, monkeypatch: pytest.MonkeyPatch) -> list[ClinicalContext | None]:
    calls: list[ClinicalContext | None] = []
    real = host.predictor.predict

    def predict(image, context=None):
        calls.append(context)
        return real(image, context)

    monkeypatch.setattr(host.predictor, "predict", predict)
    return calls


def test_the_manifest_row_prefills_the_context_and_its_differential_arrives(context_host, reference) -> None:
    s = Setup(context_host)
    s.open(FIRST)
    expected, problems = prefill_context(manifest_row(FIRST))
    assert problems == []
    assert expected == ClinicalContext(age=14, body_part="face", itch=False, grew=False, hurt=False, changed=False,
                                       bleed=False, elevation=False)
    assert s.review.context == expected
    cmp = s.review.comparison
    assert cmp is not None and cmp.path == FIRST
    assert cmp.used == context_host.predictor.context_encoding.fields  # all eight are known in this row
    image = load_image(FIRST)
    np.testing.assert_allclose(_probs(cmp.prediction), _probs(reference.predict(image, expected)), atol=1e-5)
    np.testing.assert_allclose([r.photo_only for r in cmp.rows], [x.probability for x in reference.predict(image)
                                                                 .differential], atol=1e-5)


def test_an_edit_runs_one_debounced_context_job_and_never_the_photo_only_one(context_host, reference, tmp_path,
                                                                           monkeypatch) -> None:
    s = Setup(context_host)
    bare = tmp_path / FIRST.name  # no manifest beside it: an empty context, no context job
    shutil.copy(FIRST, bare)
    s.open(bare)
    assert s.review.context == ClinicalContext() and s.review.comparison is None
    photo_only = s.co.state.view.prediction
    calls = _spy(context_host, monkeypatch)
    for age in (70, 71, 72):  # keystrokes within the debounce delay
        s.review.set_field("age", age)
        s.clock.now += 0.05
    s.review.set_field("bleed", "yes")
    assert s.ex.pending() == [] and s.review.pending
    s.timer.fire()  # too early
    assert s.ex.pending() == []
    s.clock.now += 0.5
    s.timer.fire()
    assert len(s.ex.pending(Lane.INTERACTIVE)) == 1
    s.ex.run_pending()
    ctx = ClinicalContext(age=72, bleed=True)
    assert calls == [ctx]  # one prediction, with the context: the photo-only one was not re-run
    assert s.co.state.view.prediction is photo_only
    cmp = s.review.comparison
    fields = context_host.predictor.context_encoding.fields
    assert cmp is not None and cmp.context == ctx and not s.review.pending
    assert cmp.used == tuple(f for f in fields if f in ("age", "bleed"))
    np.testing.assert_allclose(_probs(cmp.prediction), _probs(reference.predict(load_image(FIRST), ctx)), atol=1e-5)
    assert max(abs(r.delta) for r in cmp.rows) > 1e-3  # the context moved the differential
    # back to all-unknown: the photo-only answer is the whole answer, no job
    s.review.set_context(ClinicalContext())
    assert s.review.comparison is None and s.ex.pending() == []


def test_a_newer_photo_drops_the_pending_context_result(context_host, tmp_path) -> None:
    s = Setup(context_host)
    s.open(FIRST)
    assert len(s.shown) == 1  # the prefilled context's differential
    s.edit("itch", "yes")
    assert len(s.ex.pending(Lane.INTERACTIVE)) == 1  # the edited context's job, not yet run
    bare = tmp_path / SECOND.name  # not in a manifest: no context of its own
    shutil.copy(SECOND, bare)
    s.co.open_paths([bare])
    s.ex.run_pending()
    assert s.co.state.view.path == bare
    assert s.review.context == ClinicalContext() and s.review.comparison is None
    assert [c.context.itch for c in s.shown if c is not None] == [False]  # the edit's result never shown
    assert not s.review.pending


def test_a_late_result_of_a_superseded_edit_is_dropped(context_host, reference) -> None:
    s = Setup(context_host)
    s.open(FIRST)
    s.review.set_field("age", 80)
    s.review.flush()  # not yet quiet: nothing starts
    s.review.set_context(s.review.context.without(["age"]), immediate=True)  # back to the manifest row's age
    s.review.set_field("hurt", "yes")
    s.review.set_context(s.review.context, immediate=True)  # unchanged: no second job
    s.clock.now += 0.5
    s.timer.fire()
    s.ex.run_pending()
    cmp = s.review.comparison
    assert cmp is not None and cmp.context.hurt is True and cmp.context.age is None
    np.testing.assert_allclose(_probs(cmp.prediction), _probs(reference.predict(load_image(FIRST), cmp.context)),
                               atol=1e-5)


def test_a_new_model_keeps_the_edits_on_the_same_photo_and_a_photo_only_one_drops_the_job(
    context_model, photo_only_model
) -> None:
    host = ModelHost()  # its own: this test swaps the model
    host.load(context_model, "cpu", "torch")
    s = Setup(host)
    s.open(FIRST)
    s.edit("hurt", "yes")
    s.ex.run_pending()
    edited = s.review.context
    assert edited.hurt is True and s.review.comparison is not None
    s.co.load_model(context_model)  # the same photo is analysed again under the new model
    s.ex.run_pending()
    assert s.review.context == edited  # not re-filled from the manifest
    cmp = s.review.comparison
    assert cmp is not None and cmp.context == edited
    s.co.load_model(photo_only_model)
    s.ex.run_pending()
    assert not s.review.available and s.review.comparison is None and s.ex.pending() == []
    assert s.shown[-1] is None  # the panel was told the second differential is gone


def test_a_bad_value_is_refused_naming_the_field_and_nothing_crashes(context_host) -> None:
    s = Setup(context_host)
    s.open(FIRST)
    before, rejected = s.review.context, []
    s.review.field_rejected.connect(lambda name, text: rejected.append(name))
    assert not s.edit("age", "abc")
    assert not s.edit("itch", "sometimes")
    assert not s.edit("body_part", "elbow")  # not a site the model knows
    assert rejected == ["age", "itch", "body_part"]
    texts = [t for level, t in s.messages if level == "warning"]
    assert len(texts) == 3 and "age" in texts[0] and "'abc'" in texts[0] and "itch" in texts[1]
    assert "body_part" in texts[2]
    assert s.review.context == before and s.ex.pending() == []
    assert s.edit("age", "63")  # and the review carries on
    s.ex.run_pending()
    assert s.review.comparison is not None and s.review.comparison.context.age == 63


def test_a_bad_manifest_field_is_reported_and_the_others_kept() -> None:
    row = {"age": "old", "body_part": "face", "itch": "1", "bleed": "UNK", "biopsed": "1", "diagnosis": "MEL"}
    ctx, problems = prefill_context(row)
    assert ctx == ClinicalContext(body_part="face", itch=True)
    assert len(problems) == 1 and problems[0].startswith("age")


def photo_only_model_path(folder: Path) -> Path:
    """A shipped model that takes no clinical context (the default first); while every shipped model takes it,
    a tiny real photo-only bundle (randomly initialised) saved in ``folder``: what is tested is how the review
    treats a model without context inputs, which needs no trained weights."""
    from dermviewer.state.model import shipped_models
    from engine.models import build_model, model_config
    from engine.preprocess import PreprocessConfig
    from engine.taxonomy import load_taxonomy

    for m in sorted(shipped_models(), key=lambda m: m.stem != "default"):
        if not read_bundle_header(m.path).model_config.context_fields:
            return m.path
    cfg = model_config("dermimitformer_tiny")
    assert not cfg.context_fields
    torch.manual_seed(0)
    return save_bundle(folder / "photo-only.dmvb", build_model(cfg).eval(), model_config=cfg,
                       taxonomy=load_taxonomy("pad_ufes_20"), preprocess=PreprocessConfig(img_size=96),
                       name="tiny-photo-only", version="1", thresholds={"attributes": 0.5}, metrics={},
                       provenance={"untrained": True})


@pytest.fixture(scope="module")
def photo_only_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_only_model_path(tmp_path_factory.mktemp("photo-only-model"))


def test_a_photo_only_model_gets_no_context_job(monkeypatch, photo_only_model) -> None:
    host = ModelHost()
    host.load(photo_only_model, "cpu", "torch")
    s = Setup(host)
    s.open(FIRST)
    assert not s.review.available
    assert s.review.context.age == 14  # still read from the manifest, for the panel to show
    calls = _spy(host, monkeypatch)
    s.edit("age", 70)
    s.ex.run_pending()
    assert calls == [] and s.review.comparison is None and s.shown == []
