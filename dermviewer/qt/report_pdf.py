"""Render the Qt-free report (:func:`dermviewer.state.report.case_report`) to PDF with Qt's own writer.

``QPdfWriter`` never raises: asked for a file in a folder that does not exist it writes nothing and
returns as if it had. So the file is opened by Python first (which names the real reason when that
fails), Qt writes to a temporary file beside it, and the result is checked (it exists, is a complete
PDF) before it replaces the target; any failure is a :class:`ReportError` naming the path, and an
older report at that path is left as it was.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMarginsF, QSizeF, QUrl
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

from dermviewer.qt.convert import to_qimage
from dermviewer.state.report import OVERLAY_URI, PHOTO_URI, WHATIF_URI, CaseReport, ReportError, report_html, shrink

__all__ = ["write_report_pdf"]


def _render(target: Path, report: CaseReport) -> None:
    content = report.content
    writer = QPdfWriter(str(target))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle(f"DermViewer report: {content.case_name}")
    writer.setCreator("DermViewer")
    doc = QTextDocument()
    for uri, arr in ((PHOTO_URI, report.photo), (OVERLAY_URI, report.overlay), (WHATIF_URI, report.whatif_photo)):
        if arr is not None:
            doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(uri), to_qimage(shrink(arr, 800)))
    doc.setHtml(report_html(content, has_whatif_image=report.whatif_photo is not None))
    rect = writer.pageLayout().paintRect(QPageLayout.Unit.Point)  # lay out in points; print_ scales to the page
    doc.setPageSize(QSizeF(rect.width(), rect.height()))
    doc.print_(writer)
    del writer  # flushes and closes the file


def _check_pdf(target: Path, path: Path) -> None:
    try:
        size = target.stat().st_size
        with target.open("rb") as f:
            head = f.read(5)
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError as exc:
        raise ReportError(f"the PDF writer produced no file ({exc.strerror or exc})", path) from exc
    if size == 0:
        raise ReportError("the PDF writer wrote nothing (is the disk full?)", path)
    if head != b"%PDF-" or b"%%EOF" not in tail:
        raise ReportError(f"the PDF writer left an incomplete file ({size} bytes)", path)


def write_report_pdf(path: str | Path, report: CaseReport) -> Path:
    """Write ``report`` to ``path`` and return it; raises :class:`ReportError` naming ``path`` and the reason."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("wb"):  # Python, unlike QPdfWriter, says why a file cannot be written
            pass
    except OSError as exc:
        raise ReportError(f"cannot write the report: {exc.strerror or exc}", path) from exc
    try:
        _render(tmp, report)
        _check_pdf(tmp, path)
        tmp.replace(path)
    except OSError as exc:
        raise ReportError(f"cannot write the report: {exc.strerror or exc}", path) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
