"""A report as one self-contained HTML page (Jinja2, escaped, no external assets), in English or Korean.

Example:
    >>> page = to_html(report)  # doctest: +SKIP
    >>> page.startswith(b"<!DOCTYPE html>")  # doctest: +SKIP
    True
"""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

from reports.i18n import definition, label
from reports.model import Report, format_value

__all__ = ["to_html"]

_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: "NanumGothic", "Noto Sans CJK KR", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #999; }
h3 { font-size: 1em; } p.def { font-size: 0.85em; color: #444; max-width: 60em; }
table { border-collapse: collapse; font-size: 0.8em; margin-bottom: 1em; }
th, td { border: 1px solid #bbb; padding: 2px 6px; } th { background: #eee; } td.n { text-align: right; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% for s in sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% if s.definition %}<p class="def">{{ s.definition }}</p>{% endif %}
{% for t in s.tables %}
{% if t.title != t.id %}<h3>{{ t.title }}</h3>{% endif %}
<table id="{{ t.id }}">
<tr>{% for c in t.columns %}<th>{{ c[0] }}{% if c[1] %} ({{ c[1] }}){% endif %}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for v in row %}<td{% if v[1] %} class="n"{% endif %}>{{ v[0] }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endfor %}
</section>
{% endfor %}
</body>
</html>
"""
_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def to_html(report: Report) -> bytes:
    """The report as a UTF-8 HTML page."""
    lang = report.lang
    sections = []
    for s in report.sections:
        tables = []
        for t in s.tables:
            rows = [
                [(format_value(v, c.decimals), isinstance(v, int | float)) for v, c in zip(row, t.columns, strict=True)]
                for row in t.rows
            ]
            tables.append(
                {
                    "id": t.id,
                    "title": label(t.id, lang),
                    "columns": [(label(c.id, lang), c.unit) for c in t.columns],
                    "rows": rows,
                }
            )
        sections.append(
            {"id": s.id, "title": label(s.id, lang), "definition": definition(s.id, lang), "tables": tables}
        )
    page = _ENV.from_string(_TEMPLATE).render(lang=lang, title=label(report.kind, lang), sections=sections)
    return page.encode("utf-8")
