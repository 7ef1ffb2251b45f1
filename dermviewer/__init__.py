"""DermViewer desktop app: Qt-free state in dermviewer.state, the PySide6 GUI in dermviewer.qt."""
