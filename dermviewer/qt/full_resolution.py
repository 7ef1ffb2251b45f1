"""Full-resolution pixels only for the 1:1 view (issue 14): a large JPEG is decoded at the size a fitted view
and the model need (``engine.imageio.DISPLAY_MAX_SIDE``), and all of it is decoded only when the user zooms
in past that size or asks for 1:1, in a job on the interactive lane; the canvas then draws those pixels.
A photo change drops the result of a load still running for the previous one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermviewer.state.debounce import LatestOnly
from dermviewer.state.executor import Lane
from engine.errors import DermViewerError
from engine.imageio import load_image, read_image_info

if TYPE_CHECKING:
    from dermviewer.qt.main_window import MainWindow

__all__ = ["FullResolution", "install_full_resolution"]


class FullResolution:
    """Tells the canvas each photo's real size and loads its full-resolution pixels on zoom-in."""

    def __init__(self, win: MainWindow) -> None:
        self.win = win
        self._ticket = LatestOnly()
        self._path: Path | None = None  # the photo on screen, if it was decoded smaller than it is
        self._requested = False
        self.loaded: Path | None = None  # the photo whose full-resolution pixels the canvas holds
        win.controller.case_shown.connect(self._case_shown)
        win.canvas.zoom_changed.connect(self._zoomed)

    def _case_shown(self) -> None:
        self._ticket.invalidate()
        self._path, self._requested, self.loaded = None, False, None
        view = self.win.state.view
        if view is None:
            return
        try:
            info = read_image_info(view.path)
        except DermViewerError:
            return
        decoded_w = view.image.shape[1]
        if info.width > decoded_w:
            self._path = view.path
            self.win.canvas.set_native_size(info.width)

    def _zoomed(self, zoom: float) -> None:
        if self._path is None or self._requested or zoom <= 1.0:
            return
        self._requested = True
        ticket, path = self._ticket.next(), self._path
        from dermviewer.qt.convert import to_qimage

        def job() -> Any:
            return to_qimage(load_image(path))

        def done(image: Any) -> None:
            if self._ticket.is_current(ticket) and self._path == path:
                self.win.canvas.set_detail(image)
                self.loaded = path

        def failed(exc: Exception) -> None:
            self.win.state.message.emit("warning", f"Full resolution not available: {exc}")

        self.win.controller.coordinator.run(job, Lane.INTERACTIVE, done, failed)


def install_full_resolution(win: MainWindow) -> FullResolution:
    win.full_resolution = FullResolution(win)  # type: ignore[attr-defined]
    return win.full_resolution  # type: ignore[attr-defined]
