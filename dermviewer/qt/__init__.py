"""The PySide6 GUI: the only package that imports Qt. It draws what ``dermviewer.state`` holds."""
