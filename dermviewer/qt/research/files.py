"""The research panel's file dialogs and exports: open a dataset of any kind, choose a mapping file,
write tables to CSV, plots to PNG/SVG and a selection of photos to a new manifest (annotate mode opens it).

A mixin of :class:`~dermviewer.qt.research.panel.ResearchPanel`: it uses the panel's session, gallery and
views, and its ``open_path``/``message``; the writing itself is ``dermviewer.state.research.export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QWidget

from dermviewer.state.research.export import export_manifest, export_table
from dermviewer.state.research.mapping import load_mapping

__all__ = ["PanelFiles"]


class PanelFiles:
    """File dialogs and exports (see the module docstring)."""

    session: Any
    gallery: Any
    metrics_view: Any
    subgroups: Any
    mapping: Any
    mapping_button: Any
    message: Any
    open_path: Any
    _error: Any

    def _parent(self) -> QWidget:
        assert isinstance(self, QWidget)
        return self

    def _choose_mapping(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent(), "Taxonomy mapping file", "",
                                              "Mapping (*.csv *.yaml *.yml)")
        if not path:
            return
        try:
            self.mapping = load_mapping(path)
        except Exception as exc:  # noqa: BLE001 -- shown to the user, who picks another file
            self._error(exc, "Mapping file refused")
            return
        self.mapping_button.setText(f"Mapping: {Path(path).name}")

    def _open_manifest_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent(), "Dataset spec or manifest", "",
                                              "Spec or manifest (*.yaml *.yml *.csv)")
        if path:
            self.open_path("manifest", Path(path))

    def _open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._parent(), "Folder of photos")
        if not folder:
            return
        labels, _ = QFileDialog.getOpenFileName(self._parent(), "Labels CSV for that folder", folder, "CSV (*.csv)")
        if labels:
            self.open_path("folder", Path(folder), Path(labels))

    def _open_pack_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent(), "HDF5 pack", "", "HDF5 pack (*.h5 *.hdf5)")
        if path:
            self.open_path("pack", Path(path))

    def _open_oof_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent(), "Out-of-fold predictions", "", "OOF (*.oof.h5 *.h5)")
        if not path:
            return
        manifest, _ = QFileDialog.getOpenFileName(self._parent(), "Its manifest or spec (optional: cancel for none)",
                                                  "", "Spec or manifest (*.yaml *.yml *.csv)")
        self.open_path("oof", Path(path), Path(manifest) if manifest else None)

    def _save_path(self, title: str, name: str, filt: str) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self._parent(), title, name, filt)
        return Path(path) if path else None

    def _export_selection(self) -> None:
        ds = self.session.dataset
        shown = self.gallery.shown
        if ds is None or not len(shown):
            self.message.emit("info", "Nothing selected to export.")
            return
        out = self._save_path("Export selection as manifest", "selection.csv", "CSV (*.csv)")
        if out is not None:
            try:
                export_manifest(ds, shown.tolist(), out)
                self.message.emit("info", f"{len(shown)} photos written to {out} (opens in the annotate mode)")
            except Exception as exc:  # noqa: BLE001 -- a file-system problem is shown, not raised
                self._error(exc, "Export failed")

    def _export_rows(self, header: list[str], rows: list[list[object]], name: str) -> None:
        out = self._save_path("Export table", name, "CSV (*.csv)")
        if out is not None:
            try:
                export_table(out, header, rows)
            except Exception as exc:  # noqa: BLE001
                self._error(exc, "Export failed")

    def _export_predictions(self) -> None:
        ds, t = self.session.dataset, self.session.table
        if ds is None or t is None:
            return
        codes = [*ds.taxonomy.head("disease").codes, ""]
        rows = [[ds.ids[i], str(ds.images.path(i) or ""), codes[t.true[i]], codes[t.pred[i]], t.confidence[i],
                 t.loss[i], t.margin[i], bool(t.correct[i]), bool(t.scored[i]), *(t.subgroups[c][i] for c in
                 ("body_part", "fitzpatrick", "sex", "age_band"))] for i in range(len(ds))]
        self._export_rows(["id", "image", "true", "predicted", "confidence", "loss", "margin", "correct", "scored",
                           "body_part", "fitzpatrick", "sex", "age_band"], rows, "predictions.csv")

    def _export_per_class(self) -> None:
        if self.session.metrics is not None:
            self._export_rows(*self.metrics_view.table_rows(self.session.metrics), "per_class.csv")

    def _export_subgroups(self) -> None:
        self._export_rows(*self.subgroups.export_rows(), "subgroups.csv")

    def _export_plot(self, plot: Any) -> None:
        out = self._save_path("Export plot", f"{plot.objectName()}.png", "PNG (*.png);;SVG (*.svg)")
        if out is not None:
            plot.save(out)

