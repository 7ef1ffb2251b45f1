"""The research mode's state: the open dataset, the evaluation shown, the gallery's filter and order.

Qt-free (``dermviewer.state`` decides, ``dermviewer.qt`` draws): the panel turns clicks into calls
here and redraws on the signals. Work that takes time (evaluation, sweeps, localisation, the
inspector) is in plain generator/functions elsewhere in this package and runs as jobs; their results
come back through :meth:`ResearchSession.set_result` and friends.
"""

from __future__ import annotations

import numpy as np

from dermviewer.state.events import Signal
from dermviewer.state.research.dataset import EvalDataset
from dermviewer.state.research.metrics import ResearchMetrics, compute_metrics
from dermviewer.state.research.neighbours import NeighbourIndex
from dermviewer.state.research.result import EvalResult
from dermviewer.state.research.selection import PhotoFilter, PhotoTable, cell_filter

__all__ = ["ResearchSession"]


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

    def set_dataset(self, dataset: EvalDataset, result: EvalResult | None = None) -> None:
        self.dataset, self.result, self.table, self.metrics, self.neighbours = dataset, None, None, None, None
        self.filter = PhotoFilter()
        self.dataset_changed.emit()
        if result is not None:
            self.set_result(result)

    def set_result(self, result: EvalResult) -> None:
        if self.dataset is None:
            raise RuntimeError("open a dataset before showing an evaluation")
        if len(result) != len(self.dataset):
            raise ValueError(f"an evaluation of {len(result)} photos for a dataset of {len(self.dataset)}")
        self.result = result
        self.table = PhotoTable.build(self.dataset, result)
        self.metrics = compute_metrics(self.dataset, result)
        self.neighbours = None
        if result.embeddings is not None:
            hashes = [self.dataset.images.hash(i) for i in range(len(self.dataset))]
            self.neighbours = NeighbourIndex(result.embeddings, self.dataset.disease, hashes)
        self.result_changed.emit()
        self.selection_changed.emit()

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
