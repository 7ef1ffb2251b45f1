"""Model information and preferences dialogs; neither blocks the app (they are opened, not exec'ed).

Preferences are checked before they are taken: a device this machine does not have keeps the dialog
open with the reason (instead of a saved setting whose every model load then fails), and the values
go through :meth:`Settings.update`, the same rules that validate the settings file.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from dermviewer.state.model import ModelInfo
from dermviewer.state.settings import BACKENDS, DEVICES, Settings

__all__ = ["ModelInfoDialog", "PreferencesDialog", "model_info_html"]


def model_info_html(info: ModelInfo) -> str:
    e = html.escape
    rows = [
        ("Name", info.name), ("Version", info.version), ("File", info.path),
        ("SHA-256", info.sha256 or "unknown"), ("Backend", info.backend), ("Device", info.device),
        ("Trained", "NO — untrained placeholder, outputs are meaningless" if info.untrained else "yes"),
    ]
    out = ["<h2>Model</h2><table>"]
    out += [f"<tr><td><b>{e(k)}</b>&nbsp;</td><td>{e(str(v))}</td></tr>" for k, v in rows]
    out.append("</table><h3>Metrics</h3>")
    figures = info.headline_metrics(limit=50)
    out.append("<table>" + "".join(f"<tr><td>{e(k)}&nbsp;</td><td>{e(v)}</td></tr>" for k, v in figures) + "</table>"
               if figures else "<p>No evaluation figures in this bundle.</p>")
    out.append("<h3>Taxonomy</h3>")
    for head, names in info.heads.items():
        out.append(f"<p><b>{e(head)}</b> ({len(names)}): {e(', '.join(names))}</p>")
    if info.provenance:
        out.append("<h3>Provenance</h3><table>")
        out += [f"<tr><td>{e(str(k))}&nbsp;</td><td>{e(str(v))}</td></tr>" for k, v in info.provenance.items()]
        out.append("</table>")
    return "".join(out)


class ModelInfoDialog(QDialog):
    def __init__(self, info: ModelInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model information — {info.title}")
        self.resize(620, 640)
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setObjectName("model_info")
        self.browser.setOpenExternalLinks(False)  # the app opens no network connection
        self.browser.setHtml(model_info_html(info))
        lay.addWidget(self.browser, 1)
        if info.card:
            card = QTextBrowser()
            card.setOpenExternalLinks(False)
            card.setMarkdown(info.card)
            lay.addWidget(QLabel("<b>Model card</b>"))
            lay.addWidget(card, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)


class PreferencesDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.settings = settings
        form = QFormLayout(self)
        self.device = QComboBox()
        self.device.setObjectName("device")
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        self.backend = QComboBox()
        self.backend.setObjectName("backend")
        self.backend.addItems(list(BACKENDS))
        self.backend.setCurrentText(settings.backend)
        form.addRow("Device", self.device)
        form.addRow("Backend", self.backend)
        form.addRow(QLabel("<small>The model is reloaded when these change. Grad-CAM always uses torch.</small>"))
        self.error = QLabel()
        self.error.setObjectName("preferences_error")
        self.error.setStyleSheet("color: #922b21;")
        self.error.setWordWrap(True)
        self.error.hide()
        form.addRow(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.changed = False  # after accept: whether device or backend changed (the model must be reloaded)

    def choices(self) -> dict[str, str]:
        return {"device": self.device.currentText(), "backend": self.backend.currentText()}

    def problem(self) -> str | None:
        """Why the chosen values cannot be used on this machine, or ``None``."""
        from engine.errors import ModelConfigError
        from engine.inference import resolve_device

        try:
            resolve_device(self.device.currentText())
        except ModelConfigError as exc:
            return exc.reason
        return None

    def accept(self) -> None:
        """Take the values only if they can be used: otherwise say why and stay open."""
        reason = self.problem()
        refused = [] if reason else Settings().update(**self.choices())
        if reason or refused:
            self.error.setText("; ".join([reason] if reason else refused))
            self.error.show()
            return
        before = (self.settings.device, self.settings.backend)
        self.settings.update(**self.choices())
        self.changed = before != (self.settings.device, self.settings.backend)
        super().accept()
