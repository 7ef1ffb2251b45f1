"""The research mode's state: the open dataset, the evaluation shown, the gallery's filter and order.

Qt-free (``dermviewer.state`` decides, ``dermviewer.qt`` draws): the panel turns clicks into calls
here and redraws on the signals. Work that takes time (evaluation, sweeps, localisation, the
inspector) is in plain generator/functions elsewhere in this package and runs as jobs; their results
come back through :meth:`ResearchSession.set_result` and friends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dermviewer.state.events import Signal
from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.metrics import ResearchMetrics, compute_metrics
from dermviewer.state.research.neighbours import NeighbourIndex
from dermviewer.state.research.result import EvalResult
from dermviewer.state.research.selection import PhotoFilter, PhotoTable, cell_filter
from engine.metrics import MultiLabelMetrics

__all__ = ["PreparedResult", "ResearchSession", "prepare_result"]


@dataclass
class PreparedResult:
    """What showing an evaluation needs, computed off the UI thread (see :func:`prepare_result`)."""

    result: EvalResult
    table: PhotoTable
    metrics: ResearchMetrics
    neighbours: NeighbourIndex | None


def prepare_result(dataset: EvalDataset, result: EvalResult, *, attributes: bool = True) -> PreparedResult:
    """Table, metrics and neighbour index of an evaluation: a job's work, so the UI only swaps them in.

    ``attributes=False`` defers the attribute head's mAP (seconds) to :meth:`ResearchSession.add_attribute_metrics`.
    """
    if len(result) != len(dataset):
        raise ValueError(f"an evaluation of {len(result)} photos for a dataset of {len(dataset)}")
    neighbours = None
    if result.embeddings is not None:
        hashes = [dataset.images.hash(i) for i in range(len(dataset))]
        neighbours = NeighbourIndex(result.embeddings, dataset.disease, hashes)
    return PreparedResult(result, PhotoTable.build(dataset, result),
                          compute_metrics(dataset, result, attributes=attributes), neighbours)


class ResearchSession:
    def __init__(self) -> None:
        self.dataset: EvalDataset | None = None
        self.result: EvalResult | None = None
        self.table: PhotoTable | None = None
        self.metrics: ResearchMetrics | None = None
        self.neighbours: NeighbourIndex | None = None
        self.filter = PhotoFilter()
        self.sort_key = "confidence"
        self.descending = False  # least confident first: the cases worth looking at
        self.dataset_changed = Signal()
        self.result_changed = Signal()
        self.selection_changed = Signal()
        self.metrics_changed = Signal()  # the deferred attribute metrics arrived

    def set_dataset(self, dataset: EvalDataset, result: EvalResult | None = None) -> None:
        self.dataset, self.result, self.table, self.metrics, self.neighbours = dataset, None, None, None, None
        self.filter = PhotoFilter()
        self.dataset_changed.emit()
        if result is not None:
            self.set_result(result)

    def set_result(self, result: EvalResult, prepared: PreparedResult | None = None) -> None:
        """Show an evaluation; ``prepared`` (from a job) makes this instant, else it is computed here."""
        if self.dataset is None:
            raise RuntimeError("open a dataset before showing an evaluation")
        p = prepared if prepared is not None and prepared.result is result else prepare_result(self.dataset, result)
        self.result, self.table, self.metrics, self.neighbours = result, p.table, p.metrics, p.neighbours
        self.result_changed.emit()
        self.selection_changed.emit()

    def add_attribute_metrics(self, result: EvalResult, attributes: MultiLabelMetrics | None) -> bool:
        """Fill in the deferred attribute metrics (:func:`~.metrics.attribute_metrics`, computed in a job) of
        the evaluation shown; False, and nothing changes, when another evaluation is shown by now."""
        if self.metrics is None or result is not self.result:
            return False
        self.metrics = replace(self.metrics, attributes=attributes)
        self.metrics_changed.emit()
        return True

    def set_filter(self, f: PhotoFilter) -> None:
        self.filter = f
        self.selection_changed.emit()

    def select_cell(self, true_index: int, pred_index: int) -> None:
        self.set_filter(cell_filter(true_index, pred_index, self.filter.with_(true_class=None, pred_class=None)))

    def set_sort(self, key: str, descending: bool) -> None:
        self.sort_key, self.descending = key, descending
        self.selection_changed.emit()

    def selection(self) -> np.ndarray:
        """Photo indices the gallery shows, in order."""
        if self.table is None:
            return np.zeros(0, dtype=np.int64)
        return self.table.order(self.filter.indices(self.table), self.sort_key, self.descending)
