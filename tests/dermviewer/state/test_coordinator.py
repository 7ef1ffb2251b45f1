"""The coordinator without a display: a synchronous executor decides when each job runs, so "a result arrives
after the user moved on" is a line in the test. The bundled models run on real PAD-UFES-20 photos; every
prediction checked here is compared with a separately built Predictor on the same photo."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import resources
from dermviewer.state.app_state import AppState
from dermviewer.state.cases import CaseStatus
from dermviewer.state.coordinator import Coordinator
from dermviewer.state.executor import Lane, ManualExecutor, ManualTimer
from dermviewer.state.model import ModelHost, shipped_models
from dermviewer.state.settings import Settings
from dermviewer.state.whatif import WhatIfParams
from engine.imageio import load_image
from engine.inference import Predictor

IMAGES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pad_ufes_20" / "images"
NAMES = ["PAT_100_393_898.jpg", "PAT_1022_115_132.jpg", "PAT_1029_135_239.jpg", "PAT_1061_254_813.jpg"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Counts each coordinator event and keeps its arguments."""

    def __init__(self, co: Coordinator) -> None:
        self.events: dict[str, list[tuple]] = {}
        for name in ("model_loaded", "case_shown", "whatif_shown", "gradcam_shown", "folder_progress",
                     "folder_finished", "sweep_progress", "sweep_finished"):
            getattr(co, name).connect(lambda *a, n=name: self.events.setdefault(n, []).append(a))

    def count(self, name: str) -> int:
        return len(self.events.get(name, []))


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    paths = [IMAGES / n for n in NAMES]
    if not all(p.is_file() for p in paths):
        pytest.fail(f"PAD-UFES-20 photos not found under {IMAGES}")
    return paths


@pytest.fixture(scope="module")
def default_host() -> ModelHost:
    host = ModelHost()
    host.load(resources.default_model_path(), "cpu", "torch")
    return host


@pytest.fixture(scope="module")
def reference() -> Predictor:
    """Built separately from the coordinator's model, so agreement is not one object compared with itself."""
    return Predictor(resources.default_model_path(), device="cpu")


def _coordinator(host: ModelHost | None = None) -> tuple[Coordinator, ManualExecutor, ManualTimer, Clock]:
    state = AppState(Settings(device="cpu"))
    if host is not None:
        state.model = host
    ex, timer, clock = ManualExecutor(), ManualTimer(), Clock()
    return Coordinator(state, ex, timer=timer, clock=clock), ex, timer, clock


def _probs(p) -> np.ndarray:
    return np.asarray(p.disease_probs)


def test_a_late_result_for_a_photo_no_longer_current_is_recorded_but_not_shown(default_host, reference,
                                                                              photos) -> None:
    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0]])
    co.open_paths([photos[1]])  # the user moved on before the first photo's analysis ran
    assert len(ex.pending(Lane.INTERACTIVE)) == 2
    ex.run_pending()
    assert rec.count("case_shown") == 1
    view = co.state.view
    assert view is not None and view.path == photos[1]
    np.testing.assert_allclose(_probs(view.prediction), _probs(reference.predict(load_image(photos[1]))), atol=1e-5)
    first = co.state.cases[0]  # the stale analysis still fills its own row
    assert first.status is CaseStatus.DONE
    np.testing.assert_allclose(_probs(first.prediction), _probs(reference.predict(load_image(photos[0]))),
                               atol=1e-5)
    assert not co.busy


def test_debounced_whatif_runs_only_the_last_slider_position_and_stale_whatifs_are_dropped(default_host, reference,
                                                                                          photos) -> None:
    co, ex, timer, clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0]])
    ex.run_pending()
    image = co.state.view.image
    for amount in (0.01, 0.02, 0.03):  # three slider positions within the debounce delay
        co.request_whatif(WhatIfParams(sp_amount=amount))
        clock.now += 0.05
    assert ex.pending() == []
    timer.fire()  # too early: still waiting
    assert ex.pending() == [] and timer.active
    clock.now += 0.2
    timer.fire()
    assert len(ex.pending()) == 1
    co.request_whatif(WhatIfParams(blur_sigma=2.0), immediate=True)  # a newer request before the first ran
    ex.run_pending()
    assert rec.count("whatif_shown") == 1
    assert co.state.whatif.params == WhatIfParams(blur_sigma=2.0)
    expected = reference.predict(WhatIfParams(blur_sigma=2.0).apply(image))
    np.testing.assert_allclose(_probs(co.state.whatif.prediction), _probs(expected), atol=1e-5)


def test_cancelling_a_folder_run_stops_it_between_photos(default_host, reference, photos, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in photos:
        shutil.copyfile(p, folder / p.name)
    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.folder_progress.connect(lambda done, _total: co.cancel_folder() if done == 1 else None)
    co.open_paths([folder])
    assert [h.lane for h in ex.pending()] == [Lane.BATCH, Lane.INTERACTIVE]
    ex.run_pending()
    statuses = [c.status for c in co.state.cases.cases]
    assert statuses == [CaseStatus.DONE, CaseStatus.DONE, CaseStatus.PENDING, CaseStatus.PENDING]
    assert rec.count("folder_finished") == 1
    assert rec.events["folder_progress"] == [(0, 3), (1, 3)]
    second = co.state.cases[1]
    np.testing.assert_allclose(_probs(second.prediction), _probs(reference.predict(load_image(second.path))),
                               atol=1e-5)
    assert not co.busy


def test_folders_opened_before_the_model_is_ready_wait_for_it(reference, photos, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in photos[:3]:
        shutil.copyfile(p, folder / p.name)
    co, ex, _timer, _clock = _coordinator()
    rec = Recorder(co)
    co.open_paths([folder])
    assert ex.submitted == []  # nothing can run without a model
    co.load_model(resources.default_model_path())
    ex.run_pending()
    assert rec.count("model_loaded") == 1 and rec.count("folder_finished") == 1
    assert [c.status for c in co.state.cases.cases] == [CaseStatus.DONE] * 3
    for c in co.state.cases.cases:
        np.testing.assert_allclose(_probs(c.prediction), _probs(reference.predict(load_image(c.path))), atol=1e-5)
    assert co.state.view is not None and co.state.view.path == co.state.cases[0].path


def test_model_switch_clears_every_prediction_at_once_requeues_and_drops_the_old_models_results(
        photos, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    for p in photos[:3]:
        shutil.copyfile(p, folder / p.name)
    co, ex, _timer, _clock = _coordinator()
    co.load_model(resources.default_model_path())
    co.open_paths([folder])
    ex.run_pending()
    assert all(c.status is CaseStatus.DONE for c in co.state.cases.cases)
    co.open_paths([photos[3], photos[0]])  # more photos: a folder run of the old model is queued, not run
    old_runs = ex.pending(Lane.BATCH)
    assert len(old_runs) == 1

    changed: list[int] = []
    co.state.cases.changed.connect(changed.append)
    student = next(m.path for m in shipped_models() if m.stem == "student")
    co.load_model(student)
    assert ex.run_next(Lane.INTERACTIVE)  # the current photo of the old model (photos[3] is current)
    changed.clear()
    assert ex.run_next(Lane.INTERACTIVE)  # the load itself
    assert co.state.model.info.path == str(student)
    assert len(co.state.cases) == 5
    assert [c.prediction for c in co.state.cases.cases] == [None] * 5
    assert [c.status for c in co.state.cases.cases] == [CaseStatus.PENDING] * 5
    assert sorted(set(changed)) == [0, 1, 2, 3, 4]  # every row was told, before any new result
    assert old_runs[0].cancelled
    ex.run_pending()
    direct = Predictor(student, device="cpu")
    for c in co.state.cases.cases:
        assert c.status is CaseStatus.DONE
        np.testing.assert_allclose(_probs(c.prediction), _probs(direct.predict(load_image(c.path))), atol=1e-5)
    np.testing.assert_allclose(_probs(co.state.view.prediction),
                               _probs(direct.predict(load_image(co.state.cases.current.path))), atol=1e-5)


def test_sweep_is_its_own_job_and_is_dropped_when_the_photo_changes(default_host, photos) -> None:
    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0], photos[1]])
    ex.run_pending()
    co.run_sweep()
    assert [h.lane for h in ex.pending()] == [Lane.EXPLAIN]  # not on the lane the next photo needs
    co.sweep_progress.connect(lambda *_a: co.state.cases.next() if co.state.cases.current_index == 0 else None)
    ex.run_pending()
    assert rec.count("sweep_progress") == 1  # the step delivered before the photo changed; none after
    assert rec.count("sweep_finished") == 1
    assert co.sweep_result is None
    assert co.state.view.path == photos[1]
    assert not co.busy


def test_gradcam_follows_the_whatif_and_comes_back_to_the_clean_photo(default_host, photos) -> None:
    from dermviewer.state.overlays import gradcam_map

    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0]])
    ex.run_pending()
    clean_image = co.state.view.image
    co.request_gradcam("disease", 0)
    assert [h.lane for h in ex.pending()] == [Lane.EXPLAIN]
    ex.run_pending()
    clean_cam = co.state.gradcam.values.copy()
    assert co.state.explain_target.index == 0

    params = WhatIfParams(blur_sigma=4.0, sp_amount=0.05)
    co.request_whatif(params, immediate=True)
    ex.run_pending()  # the what-if, then the Grad-CAM it re-requested
    assert rec.count("whatif_shown") == 1 and rec.count("gradcam_shown") == 2
    corrupted = co.state.whatif.image
    assert not np.array_equal(corrupted, clean_image)
    model, bundle = default_host.explain_model(), default_host.predictor.bundle
    expected = gradcam_map(model, bundle, params.apply(clean_image), "disease", 0).values
    np.testing.assert_allclose(co.state.gradcam.values, expected, atol=1e-4)
    assert not np.allclose(co.state.gradcam.values, clean_cam, atol=1e-3)

    co.request_whatif(WhatIfParams())  # reset: the Grad-CAM shown was of the corrupted photo
    ex.run_pending()
    assert rec.count("gradcam_shown") == 3
    np.testing.assert_allclose(co.state.gradcam.values, clean_cam, atol=1e-4)


def test_shutdown_cancels_queued_work_and_refuses_new_work(default_host, photos) -> None:
    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0], photos[1]])
    co.shutdown()
    assert ex.run_pending() == 0
    co.open_paths([photos[2]])
    assert ex.run_pending() == 0
    assert rec.count("case_shown") == 0 and not co.busy


def test_a_sweep_started_while_the_next_photo_loads_ends_when_that_photo_arrives(default_host, photos) -> None:
    co, ex, _timer, _clock = _coordinator(default_host)
    rec = Recorder(co)
    co.open_paths([photos[0], photos[1]])
    ex.run_pending()
    co.state.cases.next()  # the second photo's analysis is queued; the first is still on screen
    co.run_sweep()
    assert ex.run_next(Lane.INTERACTIVE)
    assert co.state.view.path == photos[1]
    assert rec.count("sweep_finished") == 1  # the panel is told at once, not left "running"
    ex.run_pending()
    assert rec.count("sweep_progress") == 0
    assert not co.busy


def test_a_loaded_model_is_adopted_only_when_its_result_reaches_the_ui_thread(photos) -> None:
    """Between the load job's end on a worker and its result on the UI thread, nothing may run on the new
    model: a job started in that gap would belong to the old model's generation and be dropped as stale
    (the annotate mode lost its suggestion that way on a cold, loaded CI machine)."""
    co, ex, _timer, _clock = _coordinator()
    rec = Recorder(co)
    held: list = []
    submit = ex.submit

    def holding_submit(job, on_result=None, on_error=None, on_progress=None, lane=Lane.INTERACTIVE):
        return submit(job, lambda r: held.append((on_result, r)), on_error, on_progress, lane)

    ex.submit = holding_submit  # results stay on the "worker" until the test hands them to the UI thread
    co.load_model(resources.default_model_path())
    assert ex.run_next(Lane.INTERACTIVE)  # the model is read and verified...
    assert len(held) == 1
    assert not co.state.model.ready  # ...but not yet the loaded one
    assert rec.count("model_loaded") == 0
    on_result, result = held.pop()
    on_result(result)  # the UI thread takes it
    assert co.state.model.ready and co.state.model.info.path == str(resources.default_model_path())
    assert rec.count("model_loaded") == 1


def test_a_photo_opened_as_the_model_arrives_is_analysed_once(photos) -> None:
    """A listener of model_loaded that opens a photo (a script, a mode, a user's click in that instant) gets
    one analysis of it: the model's own analyze_current ran before the event, so it does not start the same
    photo again under a new ticket and throw the first result away (the 12 MP start-up benchmark did so)."""
    co, ex, _timer, _clock = _coordinator()
    rec = Recorder(co)
    co.model_loaded.connect(lambda _info: co.open_paths([photos[0]]))
    co.load_model(resources.default_model_path())
    assert ex.run_next(Lane.INTERACTIVE)  # the model load
    assert len(ex.pending(Lane.INTERACTIVE)) == 1  # one analysis of the photo, not two
    ex.run_pending()
    assert rec.count("case_shown") == 1 and co.state.view is not None and co.state.view.path == photos[0]
