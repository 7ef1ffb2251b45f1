"""The research mode's Qt panel (issue 12); the state it draws is ``dermviewer.state.research``."""

from dermviewer.qt.research.panel import ResearchPanel

__all__ = ["ResearchPanel"]
