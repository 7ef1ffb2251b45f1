"""The application's state in one Qt-free object: what is open, what is shown, what the user dialled in.

Widgets read it and subscribe to its signals; workers' results are written into it by the Qt layer.
Modes: review, research and annotate (each a Qt-free state module plus a Qt panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from dermviewer.state.cases import CaseList
from dermviewer.state.events import Signal
from dermviewer.state.jobs import CaseView, WhatIfView
from dermviewer.state.lesions import LesionHost
from dermviewer.state.model import ModelHost
from dermviewer.state.overlays import OverlayKind, OverlayLayer, OverlaySettings
from dermviewer.state.settings import Settings
from dermviewer.state.whatif import WhatIfComparison, WhatIfParams, compare

__all__ = ["AppState", "ExplainTarget", "Mode"]


class Mode(Enum):
    REVIEW = "Review"
    RESEARCH = "Research"
    ANNOTATE = "Annotate"

    @property
    def available(self) -> bool:
        return True  # review, research and annotate are all built


@dataclass(frozen=True)
class ExplainTarget:
    """The class whose Grad-CAM the user asked for (clicked in a panel)."""

    head: str
    index: int
    name: str


class AppState:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.mode = Mode.REVIEW
        self.cases = CaseList()
        self.model = ModelHost()
        self.lesions = LesionHost()
        self.overlays = OverlaySettings(opacity=self.settings.overlay_opacity, colormap=self.settings.colormap)
        self.whatif_params = WhatIfParams()
        self.view: CaseView | None = None
        self.whatif: WhatIfView | None = None
        self.gradcam: OverlayLayer | None = None
        self.explain_target: ExplainTarget | None = None

        self.view_changed = Signal()  # the current photo's analysis arrived (or was cleared)
        self.whatif_changed = Signal()  # the corrupted prediction arrived (or the what-if was reset)
        self.overlays_changed = Signal()  # a toggle, opacity, colormap, head, split, or a new Grad-CAM
        self.model_changed = Signal()
        self.message = Signal()  # (level, text): "info" | "warning" | "error"

    # -- what is drawn -----------------------------------------------------------------------------
    @property
    def showing_whatif(self) -> bool:
        return self.whatif is not None and not self.whatif_params.is_identity()

    def displayed_image(self):  # -> np.ndarray | None
        if self.showing_whatif and self.whatif is not None:
            return self.whatif.image
        return None if self.view is None else self.view.image

    def displayed_layers(self) -> list[OverlayLayer]:
        src = self.whatif.layers if self.showing_whatif and self.whatif is not None else (
            self.view.layers if self.view else {})
        layers = list(src.get(self.overlays.lsm_head, []))
        if self.gradcam is not None:
            layers.append(self.gradcam)
        outline = None if self.view is None else self.view.lesion_layer(self.overlays.lesion_colour)
        if outline is not None:  # the what-if photo is the same frame: the outline stays on it
            layers.append(outline)
        return layers

    def comparison(self) -> WhatIfComparison | None:
        if self.view is None or not self.showing_whatif or self.whatif is None:
            return None
        return compare(self.view.prediction, self.whatif.prediction)

    def shown_overlay_names(self) -> list[str]:
        return [la.label for la in self.displayed_layers() if self.overlays.enabled(la.kind)]

    # -- updates -----------------------------------------------------------------------------------
    def set_view(self, view: CaseView | None) -> None:
        """A new photo (or none): its Grad-CAM and what-if are gone, so the overlay controls change too."""
        self.view, self.whatif, self.gradcam, self.explain_target = view, None, None, None
        self.overlays.gradcam = False
        self.view_changed.emit()
        self.overlays_changed.emit()

    def set_whatif(self, whatif: WhatIfView | None) -> None:
        self.whatif = whatif
        self.whatif_changed.emit()

    def set_gradcam(self, layer: OverlayLayer | None, target: ExplainTarget | None = None) -> None:
        self.gradcam, self.explain_target = layer, target
        if layer is not None:  # one heat map at a time reads best: Grad-CAM replaces the LSM map
            self.overlays.gradcam, self.overlays.lsm = True, False
        self.overlays_changed.emit()

    def set_overlay(self, **changes: object) -> None:
        for k, v in changes.items():
            if not hasattr(self.overlays, k):
                raise AttributeError(f"no overlay setting {k!r}")
            setattr(self.overlays, k, v)
        self.settings.overlay_opacity = self.overlays.opacity
        self.settings.colormap = self.overlays.colormap
        self.overlays_changed.emit()

    def toggle_overlay(self, kind: OverlayKind) -> None:
        self.set_overlay(**{kind.value: not self.overlays.enabled(kind)})

    def open_paths(self, paths: list[Path]) -> list[Path]:
        for p in paths:
            self.settings.add_recent(p)
        from dermviewer.state.cases import expand_sources

        photos = expand_sources(paths)
        new = self.cases.add(photos)
        return [c.path for c in new]
