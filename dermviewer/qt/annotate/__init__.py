"""The annotate mode's Qt panel (issue 13); the state it draws is ``dermviewer.state.annotate``."""

from dermviewer.qt.annotate.panel import AnnotatePanel

__all__ = ["AnnotatePanel"]
