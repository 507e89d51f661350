"""Reports as JSON and CSV bytes, and back to figures for `report verify`.

Both are deterministic: the same report gives the same bytes (key order fixed, numbers rounded by their
column, UTF-8, LF line ends). JSON keeps the structure (sections, tables, columns with their labels and
units, rows); CSV is one figure per line, `table,key,column,value,unit`, so a spreadsheet can filter it
and `verify` can name a figure by its table, row key and column. Both carry the provenance section, from
which `verify` rebuilds the report with the same parameters, settings and ledger head.

Example:
    >>> data = to_json(report)  # doctest: +SKIP
    >>> parse(data, "report.json")[1].params.kind  # doctest: +SKIP
    'evidence'
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from kcloud.ledger import LedgerHead
from reports.common import BuildContext
from reports.i18n import definition, label
from reports.model import Column, Report, figures
from reports.params import ReportError, ReportParams

__all__ = ["CSV_HEADER", "Figure", "parse", "to_csv", "to_json"]

Figure = tuple[str, str, str, str]
CSV_HEADER = ("table", "key", "column", "value", "unit")


def to_json(report: Report) -> bytes:
    """The report as indented UTF-8 JSON."""
    lang = report.lang
    body: dict[str, Any] = {
        "report": report.kind,
        "title": label(report.kind, lang),
        "lang": lang,
        "provenance": report.provenance,
        "sections": [
            {
                "id": s.id,
                "title": label(s.id, lang),
                "definition": definition(s.id, lang),
                "tables": [
                    {
                        "id": t.id,
                        "title": label(t.id, lang),
                        "columns": [
                            {
                                "id": c.id,
                                "label": label(c.id, lang),
                                "unit": c.unit,
                                "decimals": c.decimals,
                                "key": c.key,
                            }
                            for c in t.columns
                        ],
                        "rows": t.rows,
                    }
                    for t in s.tables
                ],
            }
            for s in report.sections
        ],
    }
    return (json.dumps(body, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")


def to_csv(report: Report) -> bytes:
    """The report as one figure per CSV line (`table,key,column,value,unit`)."""
    units = {(t.id, c.id): c.unit for s in report.sections for t in s.tables for c in t.columns}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for table, key, column, value in figures(report):
        writer.writerow([table, key, column, value, units[(table, column)]])
    return buf.getvalue().encode("utf-8")


def _figures_from_json(data: bytes, name: str) -> list[Figure]:
    from reports.model import Section, Table

    try:
        body = json.loads(data.decode("utf-8"))
        sections = [
            Section(
                s["id"],
                [
                    Table(
                        t["id"],
                        [
                            Column(c["id"], c.get("unit", ""), c.get("decimals"), bool(c.get("key")))
                            for c in t["columns"]
                        ],
                        [list(r) for r in t["rows"]],
                    )
                    for t in s["tables"]
                ],
            )
            for s in body["sections"]
        ]
        return figures(Report(str(body["report"]), str(body.get("lang", "en")), sections, {}))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReportError(f"{name} is not a JSON report written by `kcloud report` ({exc})") from None


def _figures_from_csv(data: bytes, name: str) -> list[Figure]:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{name} is not a CSV report written by `kcloud report` ({exc})") from None
    if not rows or tuple(rows[0]) != CSV_HEADER or any(len(r) != len(CSV_HEADER) for r in rows[1:]):
        raise ReportError(f"{name} is not a CSV report written by `kcloud report` (header {','.join(CSV_HEADER)})")
    return [(r[0], r[1], r[2], r[3]) for r in rows[1:]]


def _context(figs: list[Figure], name: str) -> BuildContext:
    items = {key.partition("=")[2]: value for table, key, _, value in figs if table == "provenance"}
    try:

        def opt(item: str) -> str | None:
            return None if items[item] == "all" else items[item]

        params = ReportParams.parse(
            items["report"],
            start=items["from"],
            end=items["to_excluded"],
            vendor=opt("vendor"),
            site=opt("site"),
            programme=opt("programme"),
            granularity=items["granularity"],
            lang=items["lang"],
        )
        seq = int(items["ledger_head_seq"]) if items["ledger_head_seq"] else None
        head_hash = None if items["ledger_head_hash"] == "(empty ledger)" else items["ledger_head_hash"]
        return BuildContext(
            params,
            LedgerHead(int(items["ledger_rows"]), seq, head_hash),
            float(items["sample_interval_s"]),
            float(items["active_util_pct"]),
            datetime.fromisoformat(items["generated_at"]),
        )
    except KeyError as exc:
        raise ReportError(f"{name}: the provenance section lacks {exc.args[0]!r}; it cannot be verified") from None
    except ValueError as exc:
        raise ReportError(f"{name}: the provenance section is malformed ({exc})") from None


def parse(data: bytes, name: str) -> tuple[list[Figure], BuildContext]:
    """The figures of a JSON or CSV report and the context it was built with; `name` is for messages."""
    stripped = data.lstrip()
    figs = _figures_from_json(data, name) if stripped.startswith(b"{") else _figures_from_csv(data, name)
    return figs, _context(figs, name)
