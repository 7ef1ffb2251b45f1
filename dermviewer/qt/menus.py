"""Menus, toolbar and shortcuts of the review window, plus the commands that only menus start
(model dialogs, report export). Every keyboard shortcut is shown next to its menu entry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QToolBar

from dermviewer.qt.dialogs import ModelInfoDialog, PreferencesDialog
from dermviewer.qt.report_pdf import write_report_pdf
from dermviewer.state.app_state import Mode
from dermviewer.state.model import preload_model_imports, shipped_models
from dermviewer.state.overlays import LSM_HEADS, OverlayKind
from dermviewer.state.report import ReportError, case_report, default_report_name

if TYPE_CHECKING:
    from dermviewer.qt.main_window import MainWindow

__all__ = ["build_menus", "export_report", "load_model_file"]

Keys = QKeySequence | str | list[QKeySequence | str]


def _action(win: MainWindow, menu: QMenu, text: str, slot: Callable[[], object], keys: Keys | None = None,
            name: str = "") -> QAction:
    a = QAction(text, win)
    if keys is not None:
        seqs = keys if isinstance(keys, list) else [keys]
        a.setShortcuts([QKeySequence(k) for k in seqs])
    a.triggered.connect(lambda _checked=False: slot())
    menu.addAction(a)
    win.addAction(a)  # shortcuts work while the menu bar is hidden or focus is in a panel
    a.setObjectName(name or text)
    return a


def build_menus(win: MainWindow) -> dict[str, QAction]:
    s, c, canvas = win.state, win.controller, win.canvas
    acts: dict[str, QAction] = {}
    mb = win.menuBar()

    f = mb.addMenu("&File")
    acts["open"] = _action(win, f, "&Open photos…", win.open_photos_dialog, QKeySequence.StandardKey.Open)
    acts["open_folder"] = _action(win, f, "Open &folder…", win.open_folder_dialog, "Ctrl+Shift+O")
    recent = f.addMenu("Open &recent")
    recent.setObjectName("recent_menu")

    def fill_recent() -> None:
        recent.clear()
        for p in s.settings.recent_files:
            a = recent.addAction(p)
            a.triggered.connect(lambda _c=False, p=p: c.open_paths([Path(p)]))
        if not s.settings.recent_files:
            recent.addAction("(none)").setEnabled(False)

    recent.aboutToShow.connect(fill_recent)
    f.addSeparator()
    acts["report"] = _action(win, f, "&Export report (PDF)…", lambda: export_report(win), "Ctrl+E")
    f.addSeparator()
    acts["quit"] = _action(win, f, "&Quit", win.close, QKeySequence.StandardKey.Quit)

    v = mb.addMenu("&View")
    acts["next"] = _action(win, v, "&Next photo", s.cases.next, [Qt.Key.Key_PageDown, "N"])
    acts["previous"] = _action(win, v, "&Previous photo", s.cases.previous, [Qt.Key.Key_PageUp, "P"])
    v.addSeparator()
    acts["zoom_in"] = _action(win, v, "Zoom &in", canvas.zoom_in, [QKeySequence.StandardKey.ZoomIn, "+"])
    acts["zoom_out"] = _action(win, v, "Zoom &out", canvas.zoom_out, [QKeySequence.StandardKey.ZoomOut, "-"])
    acts["fit"] = _action(win, v, "&Fit to window", canvas.fit, ["Ctrl+0", "F"])
    acts["actual"] = _action(win, v, "&Actual size (1:1)", canvas.actual_size, ["Ctrl+1", "1"])
    v.addSeparator()
    for kind, text, key in ((OverlayKind.LSM, "LSM attention map", "L"), (OverlayKind.TOKENS, "Selected tokens", "T"),
                            (OverlayKind.GRADCAM, "Grad-CAM", "G")):
        acts[f"toggle_{kind.value}"] = _action(win, v, f"Toggle {text}", lambda k=kind: s.toggle_overlay(k), key)
    acts["toggle_split"] = _action(win, v, "Toggle split view", lambda: s.set_overlay(split=not s.overlays.split), "S")

    def next_head() -> None:
        i = LSM_HEADS.index(s.overlays.lsm_head)
        s.set_overlay(lsm_head=LSM_HEADS[(i + 1) % len(LSM_HEADS)])

    acts["lsm_head"] = _action(win, v, "Switch LSM head (disease/attributes)", next_head, "H")

    m = mb.addMenu("&Model")
    acts["open_model"] = _action(win, m, "&Open model (bundle or ONNX)…", lambda: open_model_dialog(win), "Ctrl+M")
    bundled = m.addMenu("&Bundled models")
    bundled.setObjectName("bundled_models_menu")
    for stem, a in _bundled_model_actions(win, bundled).items():
        acts[f"bundled_model_{stem}"] = a
    acts["model_info"] = _action(win, m, "Model &information…", lambda: show_model_info(win), "Ctrl+I")
    acts["preferences"] = _action(win, m, "&Preferences…", lambda: show_preferences(win),
                                  QKeySequence.StandardKey.Preferences)

    tb = QToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    win.addToolBar(tb)
    modes = QActionGroup(win)
    for mode in Mode:
        a = QAction(mode.value if mode.available else f"{mode.value} (coming)", win)
        a.setCheckable(True)
        a.setChecked(mode is s.mode)
        a.setEnabled(mode.available)
        a.setObjectName(f"mode_{mode.name.lower()}")
        modes.addAction(a)
        tb.addAction(a)
    tb.addSeparator()
    for key in ("open", "open_folder", "previous", "next", "fit", "actual", "report"):
        tb.addAction(acts[key])
    acts["open"].setIconText("Open")
    acts["open_folder"].setIconText("Folder")
    acts["previous"].setIconText("◀ Prev")
    acts["next"].setIconText("Next ▶")
    acts["fit"].setIconText("Fit")
    acts["actual"].setIconText("1:1")
    acts["report"].setIconText("Report")
    for a in acts.values():
        keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            a.setToolTip(f"{a.text().replace('&', '')} ({keys})")
    return acts


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _bundled_model_actions(win: MainWindow, menu: QMenu) -> dict[str, QAction]:
    """One checkable entry per bundle in ``resources/models``; the check follows the model actually loaded
    (set when ``model_changed`` fires), so a load that fails leaves it on the model still in use."""
    group = QActionGroup(win)
    group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)  # none checked for other files
    actions: dict[str, QAction] = {}

    def sync() -> None:
        info = win.state.model.info
        for a in group.actions():
            a.setChecked(info is not None and bool(info.path) and _same_file(a.data(), info.path))

    def choose(path: Path) -> None:
        sync()  # undo the check Qt set on click until the new model has loaded
        load_model_file(win, path)

    for model in shipped_models():
        a = QAction(model.label, win)
        a.setCheckable(True)
        a.setData(str(model.path))
        a.setObjectName(f"bundled_model_{model.stem}")
        a.setToolTip(str(model.path))
        a.triggered.connect(lambda _checked=False, p=model.path: choose(p))
        group.addAction(a)
        menu.addAction(a)
        actions[model.stem] = a
    if not actions:
        menu.addAction("(none found)").setEnabled(False)
    win.state.model_changed.connect(sync)
    sync()
    return actions


def load_model_file(win: MainWindow, path: str | Path) -> None:
    """The one way the app loads a model (start-up, file dialog, bundled-models menu, preferences):
    the lazy imports on the UI thread, then the load itself in the background."""
    preload_model_imports(path, win.state.settings.backend)
    win.controller.load_model(path)


def open_model_dialog(win: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(win, "Open model", "", "Models (*.dmvb *.onnx);;All files (*)")
    if path:
        load_model_file(win, path)


def show_model_info(win: MainWindow) -> ModelInfoDialog | None:
    info = win.state.model.info
    if info is None:
        win.state.message.emit("warning", "No model is loaded yet.")
        return None
    dlg = ModelInfoDialog(info, win)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dlg.show()
    return dlg


def show_preferences(win: MainWindow) -> PreferencesDialog:
    """Open the preferences (window-modal, not a nested event loop); on OK they are saved at once and
    the model is reloaded if the device or backend changed."""
    dlg = PreferencesDialog(win.state.settings, win)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)

    def taken() -> None:
        try:
            win.state.settings.save()
        except OSError as exc:
            win.state.message.emit("warning", f"Settings not saved: {exc}")
        info = win.state.model.info
        model = info.path if info is not None and info.path else win.state.settings.model_path
        if dlg.changed and model:
            load_model_file(win, model)

    dlg.accepted.connect(taken)
    dlg.open()
    return dlg


def export_report(win: MainWindow, path: str | Path | None = None) -> Path | None:
    """Write the report of the photo on screen to PDF (asking where, unless ``path`` is given).

    Says "Report written" only for a file that was checked to be a complete PDF; otherwise the message
    names the path and the reason."""
    s = win.state
    try:
        report = case_report(s)
    except ReportError as exc:
        s.message.emit("warning", f"{exc.reason[0].upper()}{exc.reason[1:]}.")
        return None
    if path is None:
        chosen, _ = QFileDialog.getSaveFileName(win, "Export report", default_report_name(s), "PDF (*.pdf)")
        if not chosen:
            return None
        path = chosen
    try:
        out = write_report_pdf(path, report)
    except ReportError as exc:
        s.message.emit("error", str(exc))
        return None
    s.message.emit("info", f"Report written to {out}")
    return out
