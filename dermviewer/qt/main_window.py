"""The review window: case list | canvas with overlay controls | findings and what-if, plus menus.

Layout and wiring only; the work happens in :class:`~dermviewer.qt.controller.Controller` and the
facts live in :class:`~dermviewer.state.app_state.AppState`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from dermviewer.qt.canvas import ImageCanvas
from dermviewer.qt.case_list import CaseListWidget
from dermviewer.qt.controller import Controller
from dermviewer.qt.findings_panel import FindingsPanel
from dermviewer.qt.messages import MessageBar
from dermviewer.qt.overlay_bar import OverlayBar
from dermviewer.qt.whatif_panel import WhatIfPanel
from dermviewer.state.app_state import AppState, Mode
from dermviewer.state.report import DISCLAIMER

__all__ = ["MainWindow"]

BANNER_STYLE = "background: #922b21; color: white; font-weight: 600; padding: 5px 10px;"
DISCLAIMER_STYLE = "color: #7d6608; padding: 0 8px;"


def _scroll(w: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(w)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


class MainWindow(QMainWindow):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("DermViewer — review")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.controller = Controller(state, self)
        self.canvas = ImageCanvas()
        self.overlay_bar = OverlayBar(state)
        self.overlay_bar.lesion_chosen.connect(self.controller.choose_lesion)
        self.case_list = CaseListWidget(state.cases)
        self.findings = FindingsPanel(state.settings.top_k)
        self.whatif_panel = WhatIfPanel()
        self.messages = MessageBar()
        self.banner = QLabel("⚠ Untrained placeholder model — its outputs are meaningless. Open a trained model "
                             "from Model ▸ Open model…")
        self.banner.setObjectName("untrained_banner")
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.hide()
        self._build_layout()
        self._actions_by_name: dict[str, QAction] = {}  # menus.build_menus fills it (app.create_window)
        self.research_panel: QWidget | None = None  # built on first switch to the research mode
        self.annotate_panel: QWidget | None = None  # built on first switch to the annotate mode
        self._build_status_bar()
        self._connect()
        if state.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(state.settings.window_geometry.encode()))

    # -- construction --------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.overlay_bar)
        cl.addWidget(self.canvas, 1)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("right_tabs")
        self.tabs.addTab(_scroll(self.findings), "Findings")
        self.tabs.addTab(_scroll(self.whatif_panel), "What-if")
        self.tabs.setMinimumWidth(380)
        self.case_list.setMinimumWidth(210)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.case_list)
        split.addWidget(centre)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([230, 800, 420])
        root = QWidget()
        rl = QVBoxLayout(root)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(0)
        rl.addWidget(self.banner)
        rl.addWidget(self.messages)
        self.mode_stack = QStackedWidget()  # page 0: review; the research panel is added when first shown
        self.mode_stack.addWidget(split)
        rl.addWidget(self.mode_stack, 1)
        self.setCentralWidget(root)

    @property
    def actions_by_name(self) -> dict[str, QAction]:
        return self._actions_by_name

    @actions_by_name.setter
    def actions_by_name(self, actions: dict[str, QAction]) -> None:
        """Set once by ``menus.build_menus``'s caller; the toolbar's mode actions then switch the page."""
        self._actions_by_name = actions
        for mode in Mode:
            a = self.findChild(QAction, f"mode_{mode.name.lower()}")
            if a is not None:
                a.triggered.connect(lambda _checked=False, m=mode: self.set_mode(m))

    def set_mode(self, mode: Mode) -> None:
        """Show a mode's page. The research panel is built on first use (its plots cost start-up time) and
        opens on the loaded model's out-of-fold predictions."""
        if mode is Mode.RESEARCH:
            if self.research_panel is None:
                from dermviewer.qt.research import ResearchPanel

                panel = ResearchPanel(self.state, self.controller.coordinator.jobs)  # the shared job runner
                panel.message.connect(self.messages.show_message)
                self.mode_stack.addWidget(panel)
                self.research_panel = panel
            self.mode_stack.setCurrentWidget(self.research_panel)
            self.setWindowTitle("DermViewer — research")
        elif mode is Mode.ANNOTATE:
            if self.annotate_panel is None:
                from dermviewer.qt.annotate import AnnotatePanel

                apanel = AnnotatePanel(self.state, self.controller.coordinator.jobs)
                apanel.message.connect(self.messages.show_message)
                self.mode_stack.addWidget(apanel)
                self.annotate_panel = apanel
            self.mode_stack.setCurrentWidget(self.annotate_panel)
            self.annotate_panel.setFocus()
            self.setWindowTitle("DermViewer — annotate")
        elif mode is Mode.REVIEW:
            self.mode_stack.setCurrentIndex(0)
            self.setWindowTitle("DermViewer — review")
        self.state.mode = mode

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.model_label = QLabel("Loading model…")
        self.zoom_label = QLabel("")
        self.folder_progress = QProgressBar()
        self.folder_progress.setMaximumWidth(220)
        self.folder_progress.setFormat("%v / %m photos")
        self.folder_cancel = QPushButton("Cancel")
        self.folder_cancel.clicked.connect(self.controller.cancel_folder)
        for w in (self.folder_progress, self.folder_cancel):
            w.hide()
        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setStyleSheet(DISCLAIMER_STYLE)
        sb.addWidget(self.model_label)
        sb.addWidget(self.folder_progress)
        sb.addWidget(self.folder_cancel)
        sb.addPermanentWidget(disclaimer)
        sb.addPermanentWidget(self.zoom_label)

    def _connect(self) -> None:
        s, c = self.state, self.controller
        s.view_changed.connect(self._show_view)
        s.whatif_changed.connect(self._show_whatif)
        s.overlays_changed.connect(self._redraw_overlays)
        s.model_changed.connect(self._show_model)
        s.message.connect(self.messages.show_message)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.findings.class_chosen.connect(c.request_gradcam)
        self.findings.top_k_changed.connect(lambda k: setattr(s.settings, "top_k", k))
        self.findings.context.bind(c.context, s)
        self.whatif_panel.params_changed.connect(self._whatif_params)
        self.whatif_panel.sweep_requested.connect(self._start_sweep)
        self.whatif_panel.sweep_cancelled.connect(c.cancel_sweep)
        c.sweep_progress.connect(self._sweep_progress)
        c.sweep_finished.connect(lambda: self.whatif_panel.sweep_running(False))
        c.folder_progress.connect(self._folder_progress)
        c.folder_finished.connect(lambda: (self.folder_progress.hide(), self.folder_cancel.hide()))

    # -- state -> widgets -----------------------------------------------------------------------------
    def _codes(self) -> dict[str, list[str]]:
        if not self.state.model.ready:
            return {}
        tax = self.state.model.predictor.bundle.taxonomy
        return {h: spec.codes for h, spec in tax.heads.items()}

    def _show_view(self) -> None:
        view = self.state.view
        self.whatif_panel.plot.clear_result()  # a sweep belongs to the photo (and model) it ran on
        if view is None:
            self.canvas.clear()
            case = self.state.cases.current
            self.findings.clear(f"{case.name}: cannot open" if case else "No photo open")
            self.whatif_panel.show_comparison(None, [])
            return
        self.canvas.set_photo(self.controller.pyramid)
        h, w = view.image_size
        title = f"{view.path.name}  <span style='color:gray;font-size:9pt'>{w}×{h}</span>"
        thr = self.state.model.predictor.bundle.threshold("attributes")
        self.findings.show_prediction(view.prediction, self._codes(), title, thr)
        self.findings.show_metadata(view.metadata)
        self.whatif_panel.show_comparison(None, [])
        self._redraw_overlays()
        i = self.state.cases.current_index
        self.setWindowTitle(f"DermViewer — {view.path.name} ({i + 1}/{len(self.state.cases)})")

    def _show_whatif(self) -> None:
        showing = self.state.showing_whatif
        levels = self.controller.whatif_pyramid if showing else self.controller.pyramid
        if levels:
            self.canvas.set_photo(levels, keep_view=True)
        self.whatif_panel.show_comparison(self.state.comparison(), self.state.whatif_params.active())
        self._redraw_overlays()

    def _redraw_overlays(self) -> None:
        self.canvas.set_overlays(self.state.displayed_layers(), self.state.overlays)

    def _show_model(self) -> None:
        info = self.state.model.info
        if info is None:
            return
        self.banner.setVisible(info.untrained)
        self.model_label.setText(f"Model: {info.title} · {info.backend} on {info.device}"
                                 + (" · UNTRAINED" if info.untrained else ""))

    # -- user actions ---------------------------------------------------------------------------------
    def _whatif_params(self, params: object) -> None:
        self.whatif_panel.set_pending()
        self.controller.request_whatif(params)  # type: ignore[arg-type]

    def _start_sweep(self) -> None:
        self.whatif_panel.sweep_running(True)
        self.controller.run_sweep()

    def _sweep_progress(self, item: object) -> None:
        done, total, result = item  # type: ignore[misc]
        self.whatif_panel.progress.setRange(0, total)
        self.whatif_panel.progress.setValue(done)
        self.whatif_panel.plot.show_result(result)

    def _folder_progress(self, done: int, total: int) -> None:
        self.folder_progress.setRange(0, total)
        self.folder_progress.setValue(done)
        running = done < total
        self.folder_progress.setVisible(running)
        self.folder_cancel.setVisible(running)

    def open_photos_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open photos", self.state.settings.last_dir or "",
            "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.bmp *.webp);;All files (*)")
        if files:
            self.state.settings.last_dir = str(Path(files[0]).parent)
            self.controller.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self.state.settings.last_dir or "")
        if folder:
            self.state.settings.last_dir = folder
            self.controller.open_paths([Path(folder)])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.controller.open_paths(paths)
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.research_panel is not None:
            self.research_panel.shutdown()  # type: ignore[attr-defined]  # its jobs first, then the runner
        self.controller.shutdown()
        self.state.settings.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        try:
            self.state.settings.save()
        except OSError as exc:
            self.state.message.emit("warning", f"Settings not saved: {exc}")
        cases = self.state.cases
        for sig in (self.state.view_changed, self.state.whatif_changed, self.state.overlays_changed,
                    self.state.model_changed, self.state.message, cases.added, cases.changed,
                    cases.current_changed, cases.cleared,
                    self.state.model.explainer_changed):  # torch may finish loading after the window is gone
            sig.disconnect()
        super().closeEvent(event)
