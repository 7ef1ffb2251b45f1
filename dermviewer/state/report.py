"""Case report content, Qt-free: what goes in the report of the photo on screen (:func:`case_report`),
the overlay composite as pixels and the report as HTML.

The Qt layer only renders this HTML to PDF (QTextDocument + QPdfWriter). Every picture in the report is
rebuilt from decoded pixels, so no EXIF, GPS or other metadata of the source file can reach the PDF.
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field

import cv2
import numpy as np

from dermviewer.state.app_state import AppState
from dermviewer.state.model import ModelInfo
from dermviewer.state.overlays import OverlayLayer, OverlaySettings, hex_rgb
from dermviewer.state.whatif import WhatIfComparison, WhatIfParams
from engine.errors import DermViewerError
from engine.prediction import LabelScore, Prediction

__all__ = ["DISCLAIMER", "CaseReport", "ReportContent", "ReportError", "case_report", "compose_overlays",
           "default_report_name", "report_html", "shrink"]

DISCLAIMER = "Research and education use; not a medical device."
PHOTO_URI, OVERLAY_URI, WHATIF_URI = "dv://photo", "dv://overlay", "dv://whatif"


def shrink(rgb: np.ndarray, max_side: int = 900) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def compose_overlays(rgb: np.ndarray, layers: list[OverlayLayer], settings: OverlaySettings,
                     max_side: int = 900) -> np.ndarray:
    """The photo with the enabled overlays blended in, as the canvas shows them (without the split)."""
    base = shrink(rgb, max_side).astype(np.float32)
    h, w = base.shape[:2]
    sx, sy = w / rgb.shape[1], h / rgb.shape[0]
    for layer in layers:
        if not settings.enabled(layer.kind):
            continue
        rgba = layer.rgba((rgb.shape[0], rgb.shape[1]), settings.colormap)
        if rgba is not None:
            heat = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            a = heat[..., 3:] / 255.0 * settings.opacity_of(layer.kind)
            base = base * (1 - a) + heat[..., :3] * a
    out = np.clip(base + 0.5, 0, 255).astype(np.uint8)
    for layer in layers:
        if settings.enabled(layer.kind):
            for x, y, bw, bh in layer.boxes:
                p0 = (round(x * sx), round(y * sy))
                p1 = (round((x + bw) * sx) - 1, round((y + bh) * sy) - 1)
                colour = hex_rgb(layer.colour) if layer.colour else (0, 255, 255)
                cv2.rectangle(out, p0, p1, colour, max(1, round(2 * max(w, h) / 600)))
    return out


@dataclass
class ReportContent:
    case_name: str
    prediction: Prediction
    model: ModelInfo
    overlays_shown: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    whatif: WhatIfComparison | None = None
    whatif_params: WhatIfParams | None = None
    top_k: int = 5
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now().astimezone())


class ReportError(DermViewerError):
    """A report could not be made (nothing to report on) or written (the file names the path)."""


@dataclass
class CaseReport:
    """Everything a report file is made from: the text content and the pictures, as pixels only."""

    content: ReportContent
    photo: np.ndarray  # the clean photo
    overlay: np.ndarray  # the displayed photo (clean or what-if) with the enabled overlays, as on screen
    whatif_photo: np.ndarray | None = None  # the corrupted photo when a what-if is shown


def case_report(state: AppState) -> CaseReport:
    """The report of what the review window shows now: photo, prediction, overlays, what-if, model.

    Raises :class:`ReportError` when there is nothing to report on yet (no photo, or no model).
    """
    view, info = state.view, state.model.info
    if view is None or info is None:
        raise ReportError("open a photo (and wait for its prediction) before exporting a report")
    shown = state.displayed_image()
    whatif = state.whatif if state.showing_whatif else None
    content = ReportContent(
        case_name=view.path.name, prediction=view.prediction, model=info,
        overlays_shown=state.shown_overlay_names(), metadata=dict(view.metadata), whatif=state.comparison(),
        whatif_params=whatif.params if whatif is not None else None, top_k=state.settings.top_k)
    overlay = compose_overlays(view.image if shown is None else shown, state.displayed_layers(), state.overlays)
    return CaseReport(content, view.image, overlay, None if whatif is None else whatif.image)


def default_report_name(state: AppState, today: _dt.date | None = None) -> str:
    """``<photo stem>_report_<yyyymmdd>.pdf`` for the photo on screen (``report.pdf`` without one)."""
    day = today or _dt.date.today()
    return f"{state.view.path.stem}_report_{day:%Y%m%d}.pdf" if state.view is not None else "report.pdf"


def _e(s: object) -> str:
    return html.escape(str(s))


def _bar(p: float, colour: str) -> str:
    """The percentage, then a bar of non-breaking spaces: QTextDocument squeezes nested fixed-width tables."""
    cells = max(1, round(p * 40))
    return (f"<td align='right'>{p * 100:.1f}%</td>"
            f"<td><span style='background-color: {colour}'>{'&nbsp;' * cells}</span></td>")


def _scores(title: str, scores: list[LabelScore], flag: str, limit: int | None = None) -> str:
    rows = []
    for s in scores[:limit]:
        colour = "#c0392b" if s.malignant else "#2e86c1"
        mark = f" <b>[{flag}]</b>" if (s.malignant if flag == "malignant" else s.positive) else ""
        rows.append(f"<tr><td>{_e(s.name)}{mark}</td>{_bar(s.probability, colour)}</tr>")
    return f"<h3>{_e(title)}</h3><table cellspacing='2'>{''.join(rows)}</table>"


def report_html(c: ReportContent, has_whatif_image: bool = False) -> str:
    p, m = c.prediction, c.model
    parts = [
        "<html><body style='font-family: sans-serif; font-size: 9pt'>",
        f"<h1>DermViewer case report</h1><p><b>Photo:</b> {_e(c.case_name)}<br>"
        f"<b>Date:</b> {c.created:%Y-%m-%d %H:%M %Z}<br>"
        f"<b>Model:</b> {_e(m.title)} ({_e(m.backend)}, {_e(m.device)})</p>",
    ]
    if m.untrained:
        parts.append("<p style='color:#b03a2e'><b>Untrained placeholder model: outputs are meaningless.</b></p>")
    parts.append(f"<p style='color:#7d6608'><b>{_e(DISCLAIMER)}</b></p>")
    if c.metadata:
        parts.append("<p>" + " · ".join(f"<b>{_e(k)}:</b> {_e(v)}" for k, v in c.metadata.items()) + "</p>")
    parts.append(
        f"<table><tr><td><img src='{PHOTO_URI}' width='300'></td>"
        f"<td><img src='{OVERLAY_URI}' width='300'></td></tr>"
        f"<tr><td>Photo</td><td>Overlays: {_e(', '.join(c.overlays_shown) or 'none')}</td></tr></table>"
    )
    if p.is_uncertain():
        parts.append(f"<p><b>Uncertain:</b> top probability {p.top.probability * 100:.1f}%, "
                     f"normalised entropy {p.entropy():.2f}.</p>")
    parts.append(_scores(f"Differential (top {c.top_k})", p.differential, "malignant", c.top_k))
    parts.append(_scores("Body part", sorted(p.body_parts, key=lambda s: -s.probability), "predicted", 5))
    parts.append(_scores("Attributes", p.attributes, "above threshold"))
    if c.whatif is not None and c.whatif_params is not None:
        w = c.whatif
        rows = "".join(
            f"<tr><td>{_e(r.name)}</td><td>{r.clean * 100:.1f}%</td><td>{r.corrupted * 100:.1f}%</td>"
            f"<td>{r.delta * 100:+.1f}</td></tr>" for r in w.rows
        )
        img = f"<p><img src='{WHATIF_URI}' width='300'></p>" if has_whatif_image else ""
        parts.append(
            f"<h3>What-if: {_e('; '.join(c.whatif_params.active()))}</h3>{img}"
            f"<p><b>{_e(w.summary())}</b></p><table border='1' cellspacing='0' cellpadding='3'>"
            f"<tr><th>Disease</th><th>Clean</th><th>Corrupted</th><th>Δ pts</th></tr>{rows}</table>"
        )
    figures = m.headline_metrics()
    fig = ", ".join(f"{_e(k)} {_e(v)}" for k, v in figures) if figures else "no evaluation figures in the bundle"
    parts.append(f"<h3>Model</h3><p>{_e(m.title)}; {fig}.</p>")
    parts.append(f"<hr><p style='font-size: 8pt'>{_e(DISCLAIMER)} Generated by DermViewer.</p></body></html>")
    return "".join(parts)
