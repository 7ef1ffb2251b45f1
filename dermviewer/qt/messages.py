"""A non-modal message area: errors name the file and the reason, and never block the app (or a test)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

__all__ = ["MessageBar"]

STYLES = {
    "error": "background: #fadbd8; color: #78281f; border: 1px solid #e6b0aa;",
    "warning": "background: #fcf3cf; color: #7d6608; border: 1px solid #f7dc6f;",
    "info": "background: #d6eaf8; color: #1b4f72; border: 1px solid #aed6f1;",
}


class MessageBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message_bar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        lay.addWidget(close)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.history: list[tuple[str, str]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        self.history.append((level, text))
        self.setStyleSheet(f"#message_bar {{ {STYLES.get(level, STYLES['info'])} border-radius: 4px; }}")
        self.label.setText(text)
        self.show()
        if level == "info":
            self._timer.start(6000)
        else:
            self._timer.stop()
