"""The lesion finder's outline as the annotate mode's suggestion (issue 15), on real PAD-UFES-20 photos: a photo
without an outline is given the finder's, Alt+O makes it the photo's outline (saved and audited like a drawn
one), and the exported mask of that outline is the finder's mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermviewer.qt.annotate import AnnotatePanel
from dermviewer.state.annotate import OUTLINE, export_outlines, import_manifest, open_store
from dermviewer.state.app_state import AppState
from dermviewer.state.settings import Settings
from engine.imageio import load_image
from engine.lesions import LesionFinder, default_finder_path
from engine.masks import load_mask
from engine.taxonomy import load_taxonomy
from tests.dermviewer.qt.test_annotate_panel import press
from tests.dermviewer.state.test_annotate_store import small_manifest


class SyncJobs:
    """Runs each job at once on the calling thread (the coordinator's ``run`` signature)."""

    def __init__(self) -> None:
        self.ran = 0

    def run(self, job, lane, on_result=None, on_error=None, **_kw):
        self.ran += 1
        result = job()
        if on_result is not None:
            on_result(result)


def test_the_found_outline_is_the_suggestion_alt_o_accepts_and_it_exports(qtbot, tmp_path: Path) -> None:
    src = small_manifest(tmp_path / "src", n=3)
    (tmp_path / "src" / "masks").unlink()  # no starting outlines: the finder's are the only suggestion
    project = tmp_path / "p.dvproj"
    store = open_store(project, load_taxonomy("pad_ufes_20"), create=True)
    import_manifest(store, src)
    store.close()
    panel = AnnotatePanel(AppState(Settings(device="cpu")), SyncJobs())
    qtbot.addWidget(panel)
    panel.resize(1300, 800)
    panel.show()
    panel.open_project(project, "alice")
    s = panel.session
    assert s is not None and s.outline() is None
    rgb = load_image(s.current.path)
    direct = LesionFinder(default_finder_path(), threads=1).find(rgb)
    assert direct.found
    found = s.found_outline()
    assert found is not None
    np.testing.assert_array_equal(found.mask(), direct.mask)
    assert panel.suggest_labels[OUTLINE].text() == "found (Alt+O accepts)"
    assert panel.value_labels[OUTLINE].text() == "—"

    press(qtbot, panel, "Alt+O")
    saved = s.outline()
    assert saved is not None
    np.testing.assert_array_equal(saved.mask(), direct.mask)
    assert panel.value_labels[OUTLINE].text() == "drawn"
    assert any(e.field == OUTLINE and e.owner == "alice" for e in s.store.audit(s.current.key))

    out = export_outlines(s.store, "alice", tmp_path / "export")
    stem = Path(s.current.key).stem
    mask_file = next((out.parent if out.is_file() else out).rglob(f"{stem}.png"))
    np.testing.assert_array_equal(load_mask(mask_file, rgb.shape[:2]), direct.mask)
    panel.close_project()
