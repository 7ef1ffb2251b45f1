"""DermViewer engine: Qt-free models, bundles, image loading, inference, explanations, corruptions, metrics."""

__version__ = "0.1.0"
