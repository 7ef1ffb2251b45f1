"""The research panel's analyses beyond the evaluation: dataset localisation against lesion masks,
corruption sweeps, model comparison and the embedding map. Each starts one of
``dermviewer.state.research``'s job functions on a :class:`~.jobs.JobSlot` and draws what comes back.

A mixin of :class:`~dermviewer.qt.research.panel.ResearchPanel` (its session, slots and views).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QFileDialog, QWidget

from dermviewer.state.research.cache import EvaluationCache
from dermviewer.state.research.compare import compare_models
from dermviewer.state.research.embedding_map import embedding_map
from dermviewer.state.research.evaluation import EvalProgress, model_checksum, run_evaluation
from dermviewer.state.research.localisation import LocalisationProgress, localise_dataset
from dermviewer.state.research.oof import align_result, open_oof
from dermviewer.state.research.robustness import SweepProgress, sample_indices, sweep_dataset

__all__ = ["PanelAnalyses", "once"]


def once(fn: Callable[[], Any]) -> Callable[[Callable[[], bool]], Iterator[Any]]:
    """A job that yields one value: ``fn()``'s."""
    def job(_cancelled: Callable[[], bool]) -> Iterator[Any]:
        yield fn()
    return job


class PanelAnalyses:
    """Localisation, sweeps, comparison and the embedding map (see the module docstring)."""

    session: Any
    state: Any
    batch: Any
    analysis: Any
    progress: Any
    eta: Any
    metrics_view: Any
    robustness: Any
    compare: Any
    embedding: Any
    embedding_xy: Any
    embedding_method: str = "PCA"
    cache_dir: Any
    message: Any
    _predictor: Any
    _error: Any

    def run_localisation(self, n: int) -> None:
        predictor, ds = self._predictor(), self.session.dataset
        if predictor is None or ds is None:
            return
        idx = np.flatnonzero(ds.has_mask & ds.scored)
        idx = sample_indices(np.where(np.isin(np.arange(len(ds)), idx), ds.disease, -1), n)
        host = self.state.model
        self.progress.setRange(0, len(idx))

        def job(cancelled: Callable[[], bool]) -> Iterator[LocalisationProgress]:
            return localise_dataset(predictor, host.explain_model(), ds, idx.tolist(), cancelled=cancelled)

        def item(p: LocalisationProgress) -> None:
            self.progress.setValue(p.done)
            self.metrics_view.show_localisation(p.summary, "" if p.summary else
                                                f"Localisation: {p.done} / {p.total} photos (one Grad-CAM each)…")

        self.batch.start(job, on_item=item, on_error=lambda e: self._error(e, "Localisation failed"))

    def run_sweep(self, corruptions: list[str], n: int) -> None:
        predictor, ds = self._predictor(), self.session.dataset
        if predictor is None or ds is None or not corruptions:
            return
        idx = sample_indices(np.where(ds.scored, ds.disease, -1), n)
        self.robustness.set_running(True)

        def item(p: SweepProgress) -> None:
            clean = next((q for q in p.points if q.corruption == "clean"), None)
            if clean is not None:
                self.robustness.set_clean(clean.accuracy, clean.bma, ds.taxonomy.head("disease").codes)
            p = SweepProgress(p.done, p.total, p.elapsed_s, [q for q in p.points if q.corruption != "clean"],
                              p.finished)
            self.robustness.show_progress(p)

        self.batch.start(lambda cancelled: sweep_dataset(predictor, ds, idx.tolist(), corruptions, cancelled=cancelled),
                         on_item=item, on_error=lambda e: self._error(e, "Sweep failed"),
                         on_done=lambda: self.robustness.set_running(False))

    def _refresh_compare_choices(self) -> None:
        from dermviewer.state.model import shipped_models

        ds = self.session.dataset
        choices: list[tuple[str, str]] = []
        for m in shipped_models():
            oof = m.path.with_name(m.stem + ".oof.h5")
            if ds is not None and ds.kind == "oof" and oof.is_file() and oof.resolve() != ds.source.resolve():
                choices.append((f"{m.label}: out-of-fold predictions", str(oof)))
            elif ds is not None and ds.kind != "oof":
                choices.append((f"{m.label}: evaluate on this dataset", str(m.path)))
        self.compare.set_choices(choices)

    def _compare_dialog(self) -> None:
        parent = self if isinstance(self, QWidget) else None
        path, _ = QFileDialog.getOpenFileName(parent, "Model or out-of-fold file to compare with", "",
                                              "Models and OOF files (*.dmvb *.onnx *.h5);;All files (*)")
        if path:
            self.compare_with(path)

    def compare_with(self, path_text: str) -> None:
        ds, res = self.session.dataset, self.session.result
        if ds is None or res is None or not path_text:
            return
        path = Path(path_text)

        def job(cancelled: Callable[[], bool]) -> Iterator[Any]:
            if path.suffix == ".h5":
                other_ds, other = open_oof(path)
                yield align_result(other, other_ds.ids, ds.ids)
                return
            from engine.inference import Predictor

            predictor = Predictor(path, device="cpu")
            cache = EvaluationCache(self.cache_dir, model_checksum(predictor), predictor.bundle.name)
            yield from run_evaluation(predictor, ds, cache, cancelled=cancelled)

        def item(v: Any) -> None:
            if isinstance(v, EvalProgress):
                self._eval_progress_only(v)
                if v.result is None:
                    return
                v = v.result
            cmp = compare_models(ds, res, v)
            self.compare.show_comparison(cmp)

        self.batch.start(job, on_item=item, on_error=lambda e: self._error(e, "Comparison failed"))

    def _eval_progress_only(self, item: EvalProgress) -> None:
        self.progress.setRange(0, item.total)
        self.progress.setValue(item.done)
        self.eta.setText(item.text())

    def compute_embedding_map(self, method: str) -> None:
        res = self.session.result
        if res is None or res.embeddings is None:
            self.message.emit("info", "This evaluation has no embeddings to map.")
            return
        emb = res.embeddings

        def done(xy: np.ndarray) -> None:
            self.embedding_xy = xy
            self.embedding_method = "t-SNE" if method == "tsne" else "PCA"
            self._draw_embedding()

        self.embedding.plot.ax.set_title("computing…")
        self.embedding.plot.draw_idle()
        self.analysis.start(once(lambda: embedding_map(emb, method)), on_item=done,
                            on_error=lambda e: self._error(e, "Embedding map"))

    def _draw_embedding(self) -> None:
        ds, table, xy = self.session.dataset, self.session.table, self.embedding_xy
        if ds is None or table is None or xy is None:
            return
        by = self.embedding.colour.currentText()
        codes = np.array([*ds.taxonomy.head("disease").codes, "?"], dtype=object)
        if by == "true class":
            groups = codes[table.true]
        elif by == "predicted class":
            groups = codes[table.pred]
        elif by == "correct / wrong":
            groups = np.where(table.true < 0, "(unknown)", np.where(table.correct, "correct", "wrong")).astype(object)
        else:
            groups = np.array([v or "(unknown)" for v in table.subgroups[by]], dtype=object)
        self.embedding.plot.show_map(xy, groups, f"Embedding map ({self.embedding_method}) coloured by {by} "
                                                 "(click a point to inspect)")

