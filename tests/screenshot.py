"""Start the real window (run under Xvfb: ``xvfb-run -a .venv/bin/python tests/screenshot.py``), open a real
photo, wait for the prediction, dial in a what-if corruption and a Grad-CAM, grab the window to
``docs/screenshot.png`` and fail if the picture is blank. Exits by itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not tests/, whose dermviewer/ folder would shadow the package
DATA = ROOT.parent / "shared" / "data" / "pad_ufes_20" / "images"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--photo", default=str(DATA / "PAT_100_393_898.jpg"))
    ap.add_argument("--tab", choices=("findings", "whatif"), default="findings")
    args = ap.parse_args()
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-shot-"))

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.app import create_window

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    folder = [str(p) for p in sorted(DATA.glob("*.jpg"))[:8]]
    win = create_window([args.photo, *folder])
    win.resize(1500, 940)
    win.show()
    status = {"code": 1}
    step = {"n": 0}

    def after_case() -> None:
        if step["n"]:
            return
        step["n"] = 1
        if args.tab == "whatif":
            win.whatif_panel.sliders["sp_amount"].setValue(30)
            win.whatif_panel.sliders["blur_sigma"].setValue(10)
        else:
            win.state.set_overlay(split=True, split_position=0.4)
            win.controller.gradcam_shown.connect(lambda: QTimer.singleShot(400, grab))
        top = win.state.view.prediction.top.code
        codes = win.state.model.predictor.bundle.taxonomy.head("disease").codes
        win.controller.request_gradcam("disease", codes.index(top))

    def after_whatif() -> None:
        if step["n"] != 1:
            return
        step["n"] = 2
        if args.tab == "whatif":
            win.tabs.setCurrentIndex(1)
            win.controller.run_sweep()
            win.whatif_panel.sweep_running(True)
            win.controller.sweep_finished.connect(lambda: QTimer.singleShot(300, grab))
        else:
            QTimer.singleShot(600, grab)

    def grab() -> None:
        img = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        ptr = img.constBits()
        arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
        std = float(arr.std())
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        img.save(args.out, "PNG")
        if Path(args.out).stat().st_size > 480_000:  # keep the repo light: 256 colours are plenty for a UI
            from PIL import Image

            Image.open(args.out).quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
        size = Path(args.out).stat().st_size
        print(f"screenshot {args.out}: {img.width()}x{img.height()}, pixel std {std:.1f}, {size / 1024:.0f} KB")
        status["code"] = 0 if std > 10 else 2
        win.close()
        app.quit()

    win.controller.case_shown.connect(lambda: QTimer.singleShot(100, after_case))
    win.controller.whatif_shown.connect(after_whatif)
    QTimer.singleShot(60000, lambda: (print("timed out", win.messages.history), app.quit()))
    app.exec()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
