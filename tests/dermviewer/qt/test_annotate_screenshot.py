"""The real window in the annotate mode: run as a script under Xvfb it writes ``docs/annotate.png``
(``xvfb-run -a .venv/bin/python tests/dermviewer/qt/test_annotate_screenshot.py``); as a test it drives the
same steps offscreen and checks the grab is a drawn window.

Steps: start the app, switch to Annotate, make a project from the shared manifest (labels and lesion masks),
rank suspected label errors, open the most suspect photo, relabel it by key and accept the model's body part.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20"


def drive(out: Path | None, project: Path) -> tuple[float, object]:
    import numpy as np
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction, QImage
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.app import create_window
    from dermviewer.state.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    win = create_window(settings=Settings(device="cpu"))
    win.resize(1600, 960)
    win.show()
    deadline = time.monotonic() + 120
    while not win.state.model.ready:  # the suggestions come from the loaded model's out-of-fold predictions
        if time.monotonic() > deadline:
            raise TimeoutError("the model did not load")
        app.processEvents()
        time.sleep(0.01)
    win.findChild(QAction, "mode_annotate").trigger()
    panel = win.annotate_panel
    panel.annotator = "reviewer"
    panel.who.setText("reviewer")
    panel.new_project(DATA / "manifest.csv", project)
    panel.rank()  # on the window's job runner (batch lane)
    deadline = time.monotonic() + 120
    while panel.ranked is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ranking did not finish; messages: {win.messages.history}")
        app.processEvents()
        time.sleep(0.01)
    first = panel.row_photo[0]  # the most suspect photo heads the list
    panel.session.go(first)
    QTest.keyClick(panel, Qt.Key.Key_2)  # disease: BCC
    panel.session.set_value("body_part", panel.session.value("body_part"))  # confirm the body part
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    img = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(str(out), "PNG")
        if out.stat().st_size > 480_000:
            from PIL import Image

            Image.open(out).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(f"screenshot {out}: {img.width()}x{img.height()}, {out.stat().st_size / 1024:.0f} KB")
    return float(arr.std()), win


def test_the_annotate_window_draws_its_panel(qapp, tmp_path) -> None:
    std, win = drive(tmp_path / "annotate.png", tmp_path / "all.dvproj")
    try:
        assert std > 10
        panel = win.annotate_panel
        assert panel.session is not None and len(panel.session.photos) == 666
        assert "Saved" in panel.saved.text() and panel.list.count() == 666
        assert panel.suggest_labels["disease"].text()  # the model's prediction is beside the labels
    finally:
        panel.close_project()
        win.close()
        win.deleteLater()


if __name__ == "__main__":
    sys.path[0] = str(ROOT)
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-shot-"))
    folder = Path(tempfile.mkdtemp(prefix="dv-shot-project-"))
    drive(ROOT / "docs" / "annotate.png", folder / "annotate.dvproj")
    sys.stdout.flush()
    os._exit(0)
