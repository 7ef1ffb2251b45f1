"""Annotate mode, Qt-free: the annotation project (store, import/export, outlines), the ranking of suspected
label errors, review and agreement, and the editing session the Qt panel drives.

One concept per module: :mod:`.schema` (tables and migrations), :mod:`.store` (the :class:`AnnotationStore`
interface and its SQLAlchemy implementation), :mod:`.project_io` (manifest and masks in, CSV/PNG/COCO out),
:mod:`.outline` (masks, polygons, boxes), :mod:`.files` (atomic writes), :mod:`.ranking` (confident learning
and near-duplicates), :mod:`.review` (accept/reject, Cohen's kappa, Dice), :mod:`.session` (what the panel shows).
"""

from dermviewer.state.annotate.errors import ProjectError, ProjectWriteError
from dermviewer.state.annotate.outline import Outline
from dermviewer.state.annotate.project_io import ImportReport, export_manifest, export_outlines, import_manifest
from dermviewer.state.annotate.store import (
    IMPORT,
    OUTLINE,
    UNUSABLE,
    AnnotationStore,
    AuditEntry,
    Edit,
    FieldSpec,
    Photo,
    SqlAnnotationStore,
    open_store,
)

__all__ = ["IMPORT", "OUTLINE", "UNUSABLE", "AnnotationStore", "AuditEntry", "Edit", "FieldSpec", "ImportReport",
           "Outline", "Photo", "ProjectError", "ProjectWriteError", "SqlAnnotationStore", "export_manifest",
           "export_outlines", "import_manifest", "open_store"]
