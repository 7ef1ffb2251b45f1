"""Model information and preferences dialogs (non-blocking where they only inform)."""

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
        ("Backend", info.backend), ("Device", info.device),
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
        browser = QTextBrowser()
        browser.setOpenExternalLinks(False)  # the app opens no network connection
        browser.setHtml(model_info_html(info))
        lay.addWidget(browser, 1)
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
        form = QFormLayout(self)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        self.backend = QComboBox()
        self.backend.addItems(list(BACKENDS))
        self.backend.setCurrentText(settings.backend)
        form.addRow("Device", self.device)
        form.addRow("Backend", self.backend)
        form.addRow(QLabel("<small>The model is reloaded when these change. Grad-CAM always uses torch.</small>"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def apply_to(self, settings: Settings) -> bool:
        """Write the choices; True when something changed (the model must be reloaded)."""
        changed = (settings.device, settings.backend) != (self.device.currentText(), self.backend.currentText())
        settings.device, settings.backend = self.device.currentText(), self.backend.currentText()
        return changed
