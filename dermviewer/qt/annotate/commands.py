"""The annotate panel's commands: project files (new from a manifest, open, export), the model's out-of-fold
predictions for the suggestions, and ranking suspected label errors on the shared job runner. A mixin of
:class:`~dermviewer.qt.annotate.panel.AnnotatePanel`, kept apart so each module holds one concern.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from dermviewer.state.annotate import (
    ProjectError,
    ProjectWriteError,
    export_manifest,
    export_outlines,
    import_manifest,
    open_store,
)
from dermviewer.state.annotate.ranking import OofPredictions, Suspect, rank_suspects, read_oof
from dermviewer.state.executor import Lane
from engine.errors import DermViewerError
from engine.taxonomy import load_taxonomy

__all__ = ["PanelCommands"]


class PanelCommands:
    """Needs the panel's ``session``, ``state``, ``jobs``, ``message``, ``annotator``, ``open_project`` and
    ``_fill_list``."""

    session: Any
    state: Any
    jobs: Any
    message: Any
    annotator: str
    ranked: list[Suspect] | None

    def _oof(self) -> OofPredictions | None:
        path: Path | None = None
        model = getattr(self.state, "model", None)
        if model is not None and getattr(model, "ready", False):
            bundle_path = getattr(model.predictor.bundle, "path", None)
            if bundle_path is not None:
                path = Path(bundle_path).with_name(Path(bundle_path).stem + ".oof.h5")
        if path is None:
            import resources

            default = Path(resources.default_model_path())
            path = default.with_name(default.stem + ".oof.h5")
        try:
            return read_oof(path) if path.is_file() else None
        except DermViewerError as exc:
            self.message.emit("warning", str(exc))
            return None

    def new_project(self, manifest: str | Path, project: str | Path, taxonomy: str = "pad_ufes_20") -> None:
        store = open_store(project, load_taxonomy(taxonomy), create=True)
        report = import_manifest(store, manifest)
        store.close()
        self.message.emit("info", f"{report.added} photos, {report.outlines} outlines imported"
                          + (f"; {len(report.missing_photos)} photos not found" if report.missing_photos else ""))
        self.open_project(project)

    # -- commands ---------------------------------------------------------------------------------------
    def rank(self) -> None:
        """Order the list by suspected label error (near-duplicate conflicts, then confident learning). Runs on
        the shared job runner's batch lane when the panel has one (hashing 10,000 photos takes a while); a
        result for a project no longer open is dropped."""
        s = self.session
        if s is None:
            return
        self.ranked = None

        def job() -> list[Suspect]:
            return rank_suspects(s.store, s.annotator, s.oof)

        def done(suspects: list[Suspect]) -> None:
            if self.session is not s:
                return
            where = {p.key: i for i, p in enumerate(s.photos)}
            self._fill_list([where[x.key] for x in suspects])
            self.ranked = suspects
            if suspects:
                top = suspects[0]
                why = "; ".join(top.reasons[:2]) or "low model belief"
                self.message.emit("info", f"Most suspect: {top.key}: {why}")

        if self.jobs is None:
            done(job())
        else:
            # the session's out-of-fold predictions were read when it opened: a model loaded meanwhile does not
            # make this ranking stale (it is dropped only if another project is open by then)
            self.jobs.run(job, Lane.BATCH, on_result=done,  # type: ignore[attr-defined]
                          on_error=lambda exc: self.message.emit("error", f"ranking failed: {exc}"),
                          stale_with_model=False)

    def export(self, folder: str | Path) -> tuple[Path, Path]:
        assert self.session is not None
        folder = Path(folder)
        csv_path = export_manifest(self.session.store, self.annotator, folder / "manifest.csv")
        coco = export_outlines(self.session.store, self.annotator, folder)
        self.message.emit("info", f"Exported {csv_path} and {coco}")
        return csv_path, coco

    def _new_dialog(self) -> None:
        manifest, _ = QFileDialog.getOpenFileName(self, "Manifest or dataset spec", "", "Manifest (*.csv *.yaml *.yml)")
        if not manifest:
            return
        project, _ = QFileDialog.getSaveFileName(self, "New annotation project", str(Path(manifest).with_suffix(
            ".dvproj")), "Annotation project (*.dvproj)")
        if project:
            self._guard(lambda: self.new_project(manifest, project))

    def _open_dialog(self) -> None:
        project, _ = QFileDialog.getOpenFileName(self, "Open annotation project", "", "Annotation project (*.dvproj)")
        if project:
            self._guard(lambda: self.open_project(project))

    def _export_dialog(self) -> None:
        if self.session is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export labels and outlines to")
        if folder:
            self._guard(lambda: self.export(folder))

    def _guard(self, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except (ProjectError, ProjectWriteError, DermViewerError) as exc:
            self.message.emit("error", str(exc))
