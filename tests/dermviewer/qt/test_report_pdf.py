"""File ▸ Export report: "Report written" only for a real PDF, otherwise the error names the path and the reason.

Before the fix ``QPdfWriter`` (which never raises) was trusted: exporting into a folder that does not
exist wrote nothing and said "Report written to ...".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dermviewer.qt.menus import export_report
from dermviewer.qt.report_pdf import write_report_pdf
from dermviewer.state.report import ReportError, case_report

TIMEOUT = 30_000


@pytest.fixture
def shown(make_window, qtbot, photo: Path):
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    win.controller.open_paths([photo])
    qtbot.waitUntil(lambda: win.state.view is not None, timeout=TIMEOUT)
    return win



def test_export_to_a_missing_folder_says_why_and_writes_nothing(shown, tmp_path: Path) -> None:
    target = tmp_path / "no such folder" / "report.pdf"
    assert export_report(shown, target) is None
    level, text = shown.messages.history[-1]
    assert level == "error"
    assert str(target) in text and "No such file or directory" in text
    assert "written" not in text
    assert not target.parent.exists()


def test_export_writes_a_complete_pdf_and_says_where(shown, tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    assert export_report(shown, target) == target
    data = target.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
    assert len(data) > 20_000  # two pictures and the tables, not an empty page
    assert b"Exif" not in data
    assert shown.messages.history[-1] == ("info", f"Report written to {target}")
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left behind


def test_a_failed_export_leaves_an_older_report_alone(shown, tmp_path: Path) -> None:
    old = tmp_path / "report.pdf"
    assert export_report(shown, old) == old
    before = old.read_bytes()
    (tmp_path / "report.pdf.dir").mkdir()
    with pytest.raises(ReportError, match=r"report\.pdf\.dir: cannot write the report"):
        write_report_pdf(tmp_path / "report.pdf.dir", case_report(shown.state))  # a folder is in the way
    assert old.read_bytes() == before
    assert not list(tmp_path.glob(".*.part"))


def test_export_before_a_photo_is_open_warns(make_window, qtbot, tmp_path: Path) -> None:
    win = make_window()
    qtbot.waitUntil(lambda: win.state.model.ready, timeout=TIMEOUT)
    assert export_report(win, tmp_path / "r.pdf") is None
    level, text = win.messages.history[-1]
    assert level == "warning" and "open a photo" in text.lower()
    assert not (tmp_path / "r.pdf").exists()
