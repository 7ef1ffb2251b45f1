"""The review window with the clinical-context panel, grabbed to ``docs/context.png`` (run under Xvfb:
``xvfb-run -a .venv/bin/python tests/screenshot_context.py``). Opens a real photo beside its manifest, waits
for the pre-filled context's differential, edits two fields, waits for the new one and grabs the window;
fails if the picture is blank. The model is the shipped default once it takes the context, else a small
untrained context bundle (the window's banner then says so). Exits by itself.
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
    ap.add_argument("--out", default=str(ROOT / "docs" / "context.png"))
    ap.add_argument("--photo", default=str(DATA / "PAT_100_393_898.jpg"))
    ap.add_argument("--model", default=None, help="a context bundle (default: as described above)")
    args = ap.parse_args()
    os.environ.setdefault("DERMVIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="dv-shot-"))

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from dermviewer.qt.app import create_window
    from tests.dermviewer.state.test_context_state import context_model_path

    model = Path(args.model) if args.model else context_model_path(Path(tempfile.mkdtemp(prefix="dv-ctx-")))
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    folder = [str(p) for p in sorted(DATA.glob("*.jpg"))[:8]]
    win = create_window([args.photo, *folder], model=model)
    win.resize(1500, 980)
    win.show()
    panel = win.findings.context
    status = {"code": 1}
    step = {"n": 0}

    def shown() -> None:
        step["n"] += 1
        if step["n"] == 1:  # the manifest row's context: now the clinician adds what the patient says
            panel.flags["bleed"].button(0).click()
            panel.flags["grew"].button(0).click()
        elif step["n"] == 2:
            QTimer.singleShot(500, grab)

    def grab() -> None:
        img = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        img.save(args.out, "PNG")
        if Path(args.out).stat().st_size > 480_000:  # keep the repo light: 256 colours are plenty for a UI
            from PIL import Image

            Image.open(args.out).quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
        std = float(arr.std())
        print(f"saved {args.out} ({img.width()}x{img.height()}, pixel std {std:.1f})")
        status["code"] = 0 if std > 5 else 1
        win.close()
        app.quit()

    panel.comparison_shown.connect(shown)
    QTimer.singleShot(120_000, lambda: (print("timed out", file=sys.stderr), app.quit()))
    app.exec()
    return status["code"]


if __name__ == "__main__":
    raise SystemExit(main())
