"""The research mode's panel: open a dataset, evaluate the loaded model on it, and ask why it fails.

Layout: a tool row (open, evaluate with progress/ETA/cancel, export) over three columns -- the
confusion matrix above the analysis tabs (metrics, subgroups, robustness, comparison, embedding map)
| the gallery | the error inspector. Decisions and numbers live in ``dermviewer.state.research``
(:class:`~dermviewer.state.research.session.ResearchSession` and its job functions); this module only
turns clicks into calls and results into widgets. Long work runs in :class:`~.jobs.JobSlot` workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.convert import to_qimage
from dermviewer.qt.research.analyses import PanelAnalyses, once
from dermviewer.qt.research.compare_view import CompareView
from dermviewer.qt.research.confusion import ConfusionMatrixWidget
from dermviewer.qt.research.embedding_view import EmbeddingView
from dermviewer.qt.research.files import PanelFiles
from dermviewer.qt.research.gallery import Gallery
from dermviewer.qt.research.inspector import InspectorWidget, compose_views
from dermviewer.qt.research.jobs import JobSlot, private_jobs
from dermviewer.qt.research.metrics_view import MetricsView
from dermviewer.qt.research.robustness_view import RobustnessView
from dermviewer.qt.research.subgroups_view import SubgroupView
from dermviewer.state.app_state import AppState
from dermviewer.state.executor import Lane
from dermviewer.state.jobs import thumbnail
from dermviewer.state.research.cache import EvaluationCache, default_cache_dir
from dermviewer.state.research.dataset import EvalDataset, open_folder, open_manifest
from dermviewer.state.research.evaluation import EvalProgress, model_checksum, run_evaluation
from dermviewer.state.research.inspection import inspect_photo
from dermviewer.state.research.mapping import TaxonomyMapping
from dermviewer.state.research.metrics import attribute_metrics
from dermviewer.state.research.oof import oof_source_of, open_oof
from dermviewer.state.research.pack import open_pack
from dermviewer.state.research.result import EvalResult
from dermviewer.state.research.session import PreparedResult, ResearchSession, prepare_result
from dermviewer.state.research.subgroups import subgroup_table
from dermviewer.state.tracked_jobs import TrackedJobs

__all__ = ["ResearchPanel"]

Job = Callable[[Callable[[], bool]], Iterator[Any]]


@dataclass
class Opened:
    """What opening a dataset hands the UI: the dataset, and the evaluation to show if there is one."""

    dataset: EvalDataset
    result: EvalResult | None
    prepared: PreparedResult | None
    cached: int  # photos the evaluation cache holds for the loaded model


class ResearchPanel(PanelAnalyses, PanelFiles, QWidget):
    message = Signal(str, str)  # level, text -> the window's message bar

    def __init__(self, state: AppState, jobs: TrackedJobs | None = None, parent: QWidget | None = None) -> None:
        """``jobs`` is the window's shared runner (``controller.coordinator.jobs``); without one the panel
        makes a private runner and shuts it down with itself."""
        super().__init__(parent)
        self.setObjectName("research_panel")
        self.state = state
        self.session = ResearchSession()
        self.mapping: TaxonomyMapping | None = None
        self.cache_dir = default_cache_dir()
        self.owns_jobs = jobs is None
        self.jobs = jobs if jobs is not None else private_jobs(self)
        self.batch = JobSlot("research_batch", self.jobs, Lane.BATCH, self)
        self.inspect_slot = JobSlot("research_inspector", self.jobs, Lane.EXPLAIN, self)
        self.analysis = JobSlot("research_analysis", self.jobs, Lane.EXPLAIN, self)
        self.thumbs = JobSlot("research_thumbnails", self.jobs, Lane.INTERACTIVE, self)
        self.embedding_xy: np.ndarray | None = None
        self.opened_default = False
        self._build()
        self._connect()

    # -- construction --------------------------------------------------------------------------------
    def _build(self) -> None:
        open_button = QToolButton()
        open_button.setObjectName("research_open")
        open_button.setText("Open dataset ▾")
        open_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(open_button)
        menu.addAction("Dataset spec (.yaml) or manifest CSV…", self._open_manifest_dialog)
        menu.addAction("Folder of photos + labels CSV…", self._open_folder_dialog)
        menu.addAction("HDF5 pack (.h5)…", self._open_pack_dialog)
        menu.addAction("Out-of-fold predictions (.oof.h5)…", self._open_oof_dialog)
        menu.addSeparator()
        menu.addAction("Out-of-fold predictions of the loaded model", self.open_default)
        open_button.setMenu(menu)
        self.mapping_button = QPushButton("Mapping file…")
        self.mapping_button.setToolTip("Their class -> our code or 'exclude' (CSV or YAML); used for the next "
                                       "manifest or folder you open")
        self.mapping_button.clicked.connect(self._choose_mapping)
        self.evaluate_button = QPushButton("Evaluate with the loaded model")
        self.evaluate_button.setObjectName("research_evaluate")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.progress = QProgressBar()
        self.progress.setObjectName("research_progress")
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v / %m photos")
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("research_cancel")
        self.cancel_button.clicked.connect(self.cancel_batch)
        for w in (self.progress, self.cancel_button):
            w.hide()
        export_button = QToolButton()
        export_button.setText("Export ▾")
        export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        em = QMenu(export_button)
        em.addAction("Per-photo predictions (CSV)…", self._export_predictions)
        em.addAction("Per-class metrics (CSV)…", self._export_per_class)
        em.addAction("Subgroup table (CSV)…", self._export_subgroups)
        em.addAction("Reliability diagram (PNG/SVG)…", lambda: self._export_plot(self.metrics_view.plot))
        em.addAction("Robustness curves (PNG/SVG)…", lambda: self._export_plot(self.robustness.curves))
        em.addAction("Embedding map (PNG/SVG)…", lambda: self._export_plot(self.embedding.plot))
        export_button.setMenu(em)
        self.dataset_label = QLabel("No dataset open.")
        self.dataset_label.setObjectName("research_dataset")
        self.dataset_label.setWordWrap(True)
        top = QHBoxLayout()
        top.setContentsMargins(6, 4, 6, 0)
        for w in (open_button, self.mapping_button, self.evaluate_button, self.progress, self.eta,
                  self.cancel_button):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(export_button)

        self.confusion = ConfusionMatrixWidget("Confusion matrix (disease)")
        self.metrics_view = MetricsView()
        self.subgroups = SubgroupView()
        self.robustness = RobustnessView()
        self.compare = CompareView()
        self.embedding = EmbeddingView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("research_tabs")
        for w, name in ((self.metrics_view, "Metrics"), (self.subgroups, "Subgroups"), (self.robustness, "Robustness"),
                        (self.compare, "Compare"), (self.embedding, "Embedding map")):
            self.tabs.addTab(w, name)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.confusion)
        left.addWidget(self.tabs)
        left.setSizes([350, 500])
        self.gallery = Gallery()
        self.inspector = InspectorWidget()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.gallery)
        split.addWidget(self.inspector)
        split.setSizes([560, 300, 640])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.dataset_label)
        lay.addWidget(split, 1)

    def _connect(self) -> None:
        s = self.session
        s.dataset_changed.connect(self._show_dataset)
        s.result_changed.connect(self._show_result)
        s.selection_changed.connect(self._show_selection)
        s.metrics_changed.connect(lambda: self.metrics_view.show_metrics(s.metrics, plot=False))
        self.confusion.cell_clicked.connect(self.select_cell)
        self.gallery.filter_changed.connect(s.set_filter)
        self.gallery.sort_changed.connect(s.set_sort)
        self.gallery.photo_activated.connect(self.inspect)
        self.gallery.thumbnails_needed.connect(self._load_thumbnails)
        self.gallery.export_requested.connect(self._export_selection)
        self.inspector.photo_requested.connect(self.inspect)
        self.metrics_view.localisation_requested.connect(self.run_localisation)
        self.robustness.run_requested.connect(self.run_sweep)
        self.robustness.cancel_requested.connect(self.cancel_batch)
        self.compare.compare_requested.connect(self.compare_with)
        self.compare.browse_requested.connect(self._compare_dialog)
        self.compare.show_disagreements.connect(self.show_indices)
        self.embedding.compute_requested.connect(self.compute_embedding_map)
        self.embedding.colour_changed.connect(lambda _t: self._draw_embedding())
        self.embedding.photo_requested.connect(self.inspect)
        self.batch.busy_changed.connect(self._batch_busy)
        self.state.model_changed.connect(self._model_changed)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self.opened_default and self.session.dataset is None:
            self.open_default()

    def _model_changed(self) -> None:
        """A new model: its own out-of-fold file replaces the previous model's; other datasets stay."""
        ds = self.session.dataset
        if self.isVisible() and (ds is None or (ds.kind == "oof" and self.opened_default)):
            self.open_default()
        self._refresh_compare_choices()

    # -- helpers -------------------------------------------------------------------------------------
    def _error(self, exc: BaseException, what: str) -> None:
        self.message.emit("error", f"{what}: {exc}")

    def _predictor(self) -> Any:
        if not self.state.model.ready:
            self.message.emit("warning", "The model is still loading; try again in a moment.")
            return None
        return self.state.model.predictor

    def _taxonomy(self) -> Any:
        return self.state.model.predictor.bundle.taxonomy if self.state.model.ready else None

    def _batch_busy(self, busy: bool) -> None:
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)
        self.evaluate_button.setEnabled(not busy)
        self.robustness.set_running(busy and self.robustness.cancel.isEnabled())
        if not busy:
            self.robustness.set_running(False)

    def cancel_batch(self) -> None:
        self.batch.cancel()
        self.eta.setText("cancelled — evaluated photos stay cached; Evaluate resumes")

    def shutdown(self) -> None:
        for slot in (self.thumbs, self.analysis, self.inspect_slot, self.batch):
            slot.cancel()
        if self.owns_jobs:
            self.jobs.shutdown()  # waits for the lanes' threads

    # -- opening -------------------------------------------------------------------------------------
    def open_default(self) -> None:
        """The loaded model's out-of-fold predictions (no inference), joined with its training manifest."""
        if not self.state.model.ready:
            return
        oof, spec = oof_source_of(self.state.model.predictor.bundle)
        if oof is None:
            self.message.emit("info", "The loaded model ships no out-of-fold file; open a dataset to evaluate it.")
            return
        self.opened_default = True
        self.open_path("oof", oof, spec)

    def open_path(self, kind: str, path: Path, extra: Path | None = None) -> None:
        """Open a dataset in the batch slot; an OOF file, or an evaluation the cache holds for every photo
        with the loaded model, is shown at once (metrics, table and neighbours are prepared in the job)."""
        tax = self._taxonomy()
        predictor = self.state.model.predictor if self.state.model.ready else None
        cache_dir = self.cache_dir

        def work() -> Opened:
            if kind == "oof":
                ds, result = open_oof(path, extra)
                return Opened(ds, result, prepare_result(ds, result, attributes=False), len(ds))
            if kind == "pack":
                ds = open_pack(path, tax)
            elif kind == "folder":
                assert extra is not None
                ds = open_folder(path, extra, taxonomy=tax or _default_tax(), mapping=self.mapping)
            else:
                ds = open_manifest(path, taxonomy=tax, mapping=self.mapping)
            if predictor is None:
                return Opened(ds, None, None, 0)
            cache = EvaluationCache(cache_dir, model_checksum(predictor), predictor.bundle.name)
            found, _, _ = cache.read([ds.images.hash(i) for i in range(len(ds))])
            if not found.all():
                return Opened(ds, None, None, int(found.sum()))
            last = list(run_evaluation(predictor, ds, cache))[-1]  # all cached: no inference
            assert last.result is not None
            return Opened(ds, last.result, prepare_result(ds, last.result, attributes=False), len(ds))

        self.dataset_label.setText(f"Opening {path.name}…")
        self.batch.start(once(work), on_item=self._opened, on_error=lambda e: self._error(e, "Cannot open"))

    def _opened(self, opened: Opened) -> None:
        self.embedding_xy = None
        self.session.set_dataset(opened.dataset)
        if opened.result is not None:
            self.session.set_result(opened.result, opened.prepared)
            if opened.dataset.kind != "oof":
                self.eta.setText(f"all {len(opened.dataset)} photos from the evaluation cache")
        elif self.state.model.ready:
            self.eta.setText(f"{opened.cached} of {len(opened.dataset)} photos cached for this model — "
                             "press Evaluate")

    def _show_dataset(self) -> None:
        ds = self.session.dataset
        if ds is None:
            return
        parts = [f"<b>{ds.name}</b> · {len(ds)} photos · {int(ds.has_mask.sum())} with a lesion mask"]
        if ds.mapping is not None and (ds.mapping.excluded or ds.mapping.unmapped or ds.mapping.missing):
            parts.append(f"<span style='color:#7d6608'>mapping: {ds.mapping.summary()}</span>")
        excluded = int((ds.eval_exclude & (ds.disease >= 0)).sum())
        if excluded:
            parts.append(f"{excluded} kept out of the metrics (label conflicts)")
        self.dataset_label.setText(" · ".join(parts))
        self.gallery.set_dataset(ds, None)
        self.metrics_view.show_metrics(None)
        self.metrics_view.show_localisation(None)
        self.confusion.show_matrix(np.zeros((0, 0), np.int64), [])
        self.subgroups.show_rows([])
        self._refresh_compare_choices()

    def _show_result(self) -> None:
        ds, m, table, res = self.session.dataset, self.session.metrics, self.session.table, self.session.result
        if ds is None or m is None or table is None or res is None:
            return
        codes = ds.taxonomy.head("disease").codes
        self.gallery.set_dataset(ds, table)
        self.metrics_view.show_metrics(m)
        if m.disease is not None:
            self.confusion.show_matrix(m.disease.confusion, codes)
        self.robustness.set_clean(None, None, codes)

        def deferred(_cancelled: Callable[[], bool]) -> Iterator[tuple[str, Any]]:
            yield "subgroups", subgroup_table(table, res.disease, len(codes))
            if m.attributes is None:
                yield "attributes", attribute_metrics(ds, res)

        def arrived(item: tuple[str, Any]) -> None:
            if item[0] == "subgroups":
                self.subgroups.show_rows(item[1])
            else:
                self.session.add_attribute_metrics(res, item[1])

        self.analysis.start(deferred, on_item=arrived, on_error=lambda e: self._error(e, "Subgroups"))
        self.dataset_label.setText(self.dataset_label.text().split(" · evaluated by")[0]
                                   + f" · evaluated by <b>{res.model_name}</b>")

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self) -> None:
        predictor, ds = self._predictor(), self.session.dataset
        if predictor is None or ds is None:
            return
        if ds.kind == "oof":
            self.message.emit("info", "An out-of-fold file already holds its predictions; open the manifest to "
                                      "evaluate the loaded model on the same photos.")
            return
        cache = EvaluationCache(self.cache_dir, model_checksum(predictor), predictor.bundle.name,
                                {h: s.codes for h, s in predictor.bundle.taxonomy.heads.items()})
        self.progress.setRange(0, len(ds))

        def job(cancelled: Callable[[], bool]) -> Iterator[tuple[EvalProgress, PreparedResult | None]]:
            for item in run_evaluation(predictor, ds, cache, batch_size=16, cancelled=cancelled):
                done = item.result is not None
                yield item, prepare_result(ds, item.result, attributes=False) if done else None

        self.batch.start(job, on_item=self._eval_progress, on_error=lambda e: self._error(e, "Evaluation failed"))

    def _eval_progress(self, value: tuple[EvalProgress, PreparedResult | None]) -> None:
        item, prepared = value
        self.progress.setRange(0, item.total)
        self.progress.setValue(item.done)
        self.eta.setText(item.text())
        if item.result is not None:
            if item.result.errors:
                first = next(iter(item.result.errors.values()))
                self.message.emit("warning", f"{len(item.result.errors)} photos could not be read, e.g. {first}")
            self.session.set_result(item.result, prepared)

    # -- gallery and inspector -------------------------------------------------------------------------
    def select_cell(self, true_index: int, pred_index: int) -> None:
        self.session.select_cell(true_index, pred_index)

    def show_indices(self, indices: list[int]) -> None:
        """A fixed list of photos (e.g. a disagreement list), ordered like everything else."""
        ds, table = self.session.dataset, self.session.table
        if ds is None or table is None:
            return
        order = table.order(np.asarray(indices, np.int64), self.session.sort_key, self.session.descending)
        self.gallery.show_selection(order, ds, table, " · from the comparison")

    def _show_selection(self) -> None:
        ds, table = self.session.dataset, self.session.table
        if ds is None or table is None:
            return
        self.gallery.show_filter(self.session.filter)
        self.gallery.show_selection(self.session.selection(), ds, table)

    def _load_thumbnails(self, indices: list[int]) -> None:
        ds = self.session.dataset
        if ds is None or not indices:
            return

        def job(cancelled: Callable[[], bool]) -> Iterator[tuple[int, Any]]:
            for i in indices:
                if cancelled():
                    return
                try:
                    yield i, to_qimage(thumbnail(ds.images.load(i), 88))
                except Exception:  # noqa: BLE001 -- a photo that cannot be read keeps its grey tile
                    continue

        self.thumbs.start(job, on_item=lambda v: self.gallery.set_thumbnail(*v))

    def inspect(self, index: int) -> None:
        ds, res = self.session.dataset, self.session.result
        predictor = self._predictor()
        if ds is None or res is None or predictor is None:
            return
        self.inspector.show_pending(ds.display_name(index))
        neighbours = self.session.neighbours
        host = self.state.model

        def work() -> Any:
            ins = inspect_photo(predictor, host.explain_model(), ds, res, index, neighbours)
            return compose_views(ins, ds)

        self.inspect_slot.start(once(work), on_item=lambda v: self.inspector.show_view(v, ds),
                                on_error=lambda e: self.inspector.show_error(f"Cannot inspect: {e}"))


def _default_tax() -> Any:
    from engine.taxonomy import load_taxonomy

    return load_taxonomy("pad_ufes_20")
