"""A report as a PDF (reportlab, A4 landscape) with the NanumGothic TrueType font embedded, so that Korean
titles and definitions render, and can be extracted as text, on any reader.

The font comes from Debian's `fonts-nanum` (`/usr/share/fonts/truetype/nanum/NanumGothic.ttf`, or another
TrueType file passed as `font_path`); without it the PDF is refused with a message saying what to
install, rather than drawn with empty boxes for Hangul.

Example:
    >>> data = to_pdf(report)  # doctest: +SKIP
    >>> data[:5]  # doctest: +SKIP
    b'%PDF-'
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]

from reports.i18n import definition, label
from reports.model import Report, format_value
from reports.params import ReportError

__all__ = ["FONT_PATH", "to_pdf"]

FONT_PATH = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
_FONT = "NanumGothic"
_BOLD = "NanumGothicBold"


def _register(font_path: Path) -> tuple[str, str]:
    if _FONT in pdfmetrics.getRegisteredFontNames():
        return _FONT, _BOLD if _BOLD in pdfmetrics.getRegisteredFontNames() else _FONT
    if not font_path.is_file():
        raise ReportError(
            f"the Korean font {font_path} is missing; install the Debian package fonts-nanum to render PDF reports"
        )
    pdfmetrics.registerFont(TTFont(_FONT, str(font_path)))
    bold = font_path.with_name("NanumGothicBold.ttf")
    if bold.is_file():
        pdfmetrics.registerFont(TTFont(_BOLD, str(bold)))
        return _FONT, _BOLD
    return _FONT, _FONT


def to_pdf(report: Report, font_path: Path = FONT_PATH) -> bytes:
    """The report as PDF bytes."""
    regular, bold = _register(font_path)
    lang = report.lang
    title = ParagraphStyle("title", fontName=bold, fontSize=16, leading=20, spaceAfter=8)
    h2 = ParagraphStyle("h2", fontName=bold, fontSize=12, leading=15, spaceBefore=10, spaceAfter=4)
    h3 = ParagraphStyle("h3", fontName=bold, fontSize=9, leading=11, spaceBefore=4, spaceAfter=2)
    body = ParagraphStyle("body", fontName=regular, fontSize=8, leading=10, spaceAfter=4)
    cell = ParagraphStyle("cell", fontName=regular, fontSize=6.5, leading=8)
    head = ParagraphStyle("head", fontName=bold, fontSize=6.5, leading=8)
    page_w = landscape(A4)[0] - 24 * mm
    story: list[Flowable] = [Paragraph(escape(label(report.kind, lang)), title)]
    for section in report.sections:
        story.append(Paragraph(escape(label(section.id, lang)), h2))
        text = definition(section.id, lang)
        if text:
            story.append(Paragraph(escape(text), body))
        for table in section.tables:
            if label(table.id, lang) != table.id:
                story.append(Paragraph(escape(label(table.id, lang)), h3))
            header = [
                Paragraph(escape(label(c.id, lang) + (f" ({c.unit})" if c.unit else "")), head) for c in table.columns
            ]
            rows = [
                [Paragraph(escape(format_value(v, c.decimals)), cell) for v, c in zip(row, table.columns, strict=True)]
                for row in table.rows
            ]
            if not rows:
                rows = [[Paragraph("—", cell)] + [Paragraph("", cell)] * (len(table.columns) - 1)]
            grid = Table([header, *rows], colWidths=[page_w / len(table.columns)] * len(table.columns), repeatRows=1)
            grid.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.extend([grid, Spacer(1, 4)])
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=label(report.kind, lang),
        author="kcloud-observatory",
    )
    doc.build(story)
    return buf.getvalue()
