"""The real window in the research mode, as a person sees it: run as a script under Xvfb it writes
``docs/research.png`` (``xvfb-run -a .venv/bin/python tests/dermviewer/qt/test_research_screenshot.py``);
as a test it drives the same steps offscreen and checks the grab is a drawn window, not a blank one.

Steps: start the app on the shipped default, switch to Research (it opens the default's out-of-fold
predictions), click the confusion cell of melanomas called what they are most often mistaken for, wait
for the gallery's thumbnails, open the first photo in the inspector (Grad-CAM of true and predicted
class, mask outline, neighbours).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def drive(out: Path | None, timeout_s: float = 120.0) -> tuple[float, object]:
    """Run the scenario; return the grab's pixel standard deviation and the window (still open)."""
    import numpy as np
    from PySide6.QtGui import QAction, QImage
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.app import create_window
    from dermviewer.state.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    win = create_window(settings=Settings(device="cpu"))
    win.resize(1600, 960)
    win.show()
    deadline = time.monotonic() + timeout_s

    def wait(cond, what: str) -> None:  # type: ignore[no-untyped-def]
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; messages: {win.messages.history}")
            app.processEvents()
            time.sleep(0.01)

    wait(lambda: win.state.model.ready, "the model")
    win.findChild(QAction, "mode_research").trigger()
    panel = win.research_panel
    wait(lambda: panel.session.result is not None, "the out-of-fold predictions")
    codes = panel.session.dataset.taxonomy.head("disease").codes
    mel = codes.index("MEL")
    row = panel.confusion.matrix[mel].copy()
    row[mel] = -1
    panel.confusion.click(mel, int(row.argmax()))  # melanomas called what they are most often mistaken for
    wait(lambda: not panel.thumbs.running, "the thumbnails")
    panel.inspect(int(panel.gallery.shown[0]))
    wait(lambda: panel.inspector.current is not None, "the inspector")
    wait(lambda: not panel.analysis.running and panel.session.metrics.attributes is not None, "the analyses")
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    img = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(str(out), "PNG")
        if out.stat().st_size > 480_000:  # keep the repo light: 256 colours are plenty for a UI
            from PIL import Image

            Image.open(out).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(f"screenshot {out}: {img.width()}x{img.height()}, {out.stat().st_size / 1024:.0f} KB")
    return float(arr.std()), win


def test_the_research_window_draws_its_panels(qapp, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DERMVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    std, win = drive(tmp_path / "research.png")
    try:
        assert std > 10  # a drawn window, not a blank or single-colour grab
        panel = win.research_panel
        assert panel.inspector.current is not None and len(panel.inspector.neighbour_buttons) == 5
        t, p = panel.confusion.table.currentRow(), panel.confusion.table.currentColumn()
        assert t != p and panel.gallery.list.count() == panel.confusion.count(t, p)
        assert (tmp_path / "research.png").stat().st_size > 50_000
    finally:
        win.close()
        win.deleteLater()


if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # not tests/..., whose dermviewer/ folder would shadow the package
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-shot-"))
    os.environ.setdefault("DERMVIEWER_CACHE_DIR", tempfile.mkdtemp(prefix="dv-shot-cache-"))
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "research.png"
    value, window = drive(target)
    window.close()  # type: ignore[attr-defined]
    sys.exit(0 if value > 10 else 2)
