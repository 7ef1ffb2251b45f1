"""Qt-free application state: cases, settings, jobs, overlays, what-if parameters, debouncing, reports.

Everything here runs (and is tested) without a display; ``dermviewer.qt`` draws it.
"""
