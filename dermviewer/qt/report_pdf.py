"""Render the Qt-free report HTML to PDF with Qt's own writer; pictures are handed over as pixels only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMarginsF, QSizeF, QUrl
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

from dermviewer.qt.convert import to_qimage
from dermviewer.state.report import OVERLAY_URI, PHOTO_URI, WHATIF_URI, ReportContent, report_html, shrink

__all__ = ["write_report_pdf"]


def write_report_pdf(path: str | Path, content: ReportContent, photo: np.ndarray, overlay: np.ndarray,
                     whatif_photo: np.ndarray | None = None) -> Path:
    path = Path(path)
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle(f"DermViewer report: {content.case_name}")
    writer.setCreator("DermViewer")
    doc = QTextDocument()
    for uri, arr in ((PHOTO_URI, photo), (OVERLAY_URI, overlay), (WHATIF_URI, whatif_photo)):
        if arr is not None:
            doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(uri), to_qimage(shrink(arr, 800)))
    doc.setHtml(report_html(content, has_whatif_image=whatif_photo is not None))
    rect = writer.pageLayout().paintRect(QPageLayout.Unit.Point)  # lay out in points; print_ scales to the page
    doc.setPageSize(QSizeF(rect.width(), rect.height()))
    doc.print_(writer)
    del writer  # flushes the file
    return path
