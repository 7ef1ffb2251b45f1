"""DermViewer training: data specs, HDF5 packs, losses, trainer, cross-validation, distillation, robustness.

Imports ``engine`` (models, metrics, corruptions, bundles); never the app or Qt.
"""
