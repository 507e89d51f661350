"""One entry point for building, rendering and verifying a report, shared by the CLI and the HTTP API.

`render(conn, params, settings, fmt, generated_at)` builds the report asked for and returns its bytes;
`verify(conn, data, name)` rebuilds a JSON or CSV report from the database with the parameters,
settings and ledger head recorded in it, and says whether every figure still matches (the generation
time is the only figure left out). A ledger whose rows up to the recorded head no longer hash the same
is reported as such before any figure is compared.

Example:
    >>> data = render(conn, params, settings, "json", generated_at)  # doctest: +SKIP
    >>> verify(conn, data, "report.json").ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from kcloud.settings import Settings
from reports.common import BuildContext
from reports.model import Report, figures
from reports.params import ReportError, ReportParams
from reports.serialize import Figure, parse, to_csv, to_json

__all__ = ["REPORT_WORK_MEM", "VerifyResult", "build", "render", "verify"]

#: work_mem of a report's transaction: enough for a quarter of 10,000 devices' daily rows in memory
REPORT_WORK_MEM = "256MB"
_SKIP = {("provenance", "item=generated_at", "value")}


def build(conn: psycopg.Connection[Any], ctx: BuildContext) -> Report:
    """The report `ctx.params` asks for.

    Its queries aggregate a row per device and day of the period; `work_mem` is raised for the
    transaction (`set_config(..., true)`), so that they hash in memory rather than spill to disk.
    """
    conn.execute("SELECT set_config('work_mem', %s, true)", (REPORT_WORK_MEM,))
    if ctx.params.kind == "allocation":
        from reports.allocation import build_allocation

        return build_allocation(conn, ctx)
    from reports.evidence import build_evidence

    return build_evidence(conn, ctx)


def render(
    conn: psycopg.Connection[Any], params: ReportParams, settings: Settings, fmt: str, generated_at: datetime
) -> bytes:
    """Build the report and return it in `fmt` (json, csv, html or pdf)."""
    report = build(conn, BuildContext.now(conn, params, settings, generated_at))
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        from reports.html import to_html

        return to_html(report)
    if fmt == "pdf":
        from reports.pdf import to_pdf

        return to_pdf(report)
    raise ReportError(f"--format {fmt!r} is unknown; choose one of json, csv, html, pdf")


@dataclass(frozen=True)
class VerifyResult:
    """Whether a report still matches the database, and what differs first."""

    ok: bool
    message: str
    compared: int = 0


def _check_ledger(conn: psycopg.Connection[Any], ctx: BuildContext, name: str) -> str | None:
    head = ctx.ledger
    if head.seq is None:
        return None
    row = conn.execute(
        "SELECT hash, (SELECT count(*) FROM deployment_events WHERE seq <= %(seq)s) "
        "FROM deployment_events WHERE seq = %(seq)s",
        {"seq": head.seq},
    ).fetchone()
    if row is None:
        return f"{name}: the ledger row seq {head.seq} the report was built from is missing from the database"
    if row[0] != head.hash or int(row[1]) != head.count:
        return (
            f"{name}: the ledger differs from the one the report was built from: at seq {head.seq} the report "
            f"names hash {head.hash} over {head.count} rows, the database holds hash {row[0]} over {row[1]} rows"
        )
    return None


def _first_difference(theirs: list[Figure], ours: list[Figure]) -> str | None:
    mine = {(t, k, c): v for t, k, c, v in ours if (t, k, c) not in _SKIP}
    seen: set[tuple[str, str, str]] = set()
    for t, k, c, v in theirs:
        where = (t, k, c)
        if where in _SKIP:
            continue
        seen.add(where)
        if where not in mine:
            return f"{t} [{k}] {c}: the report says {v!r}, the database gives no such figure"
        if mine[where] != v:
            return f"{t} [{k}] {c}: the report says {v!r}, the database gives {mine[where]!r}"
    for where, v in mine.items():
        if where not in seen:
            t, k, c = where
            return f"{t} [{k}] {c}: the database gives {v!r}, the report lacks this figure"
    return None


def verify(conn: psycopg.Connection[Any], data: bytes, name: str) -> VerifyResult:
    """Rebuild the report in `data` (JSON or CSV) and compare every figure; raises `ReportError` when
    `data` is not a report or its provenance is incomplete."""
    theirs, ctx = parse(data, name)
    broken = _check_ledger(conn, ctx, name)
    if broken is not None:
        return VerifyResult(False, broken)
    rebuilt = figures(build(conn, ctx))
    difference = _first_difference(theirs, rebuilt)
    if difference is not None:
        return VerifyResult(False, f"{name} does not match the database: {difference}", len(theirs))
    return VerifyResult(
        True,
        f"{name} matches the database: {len(theirs)} figures rebuilt from ledger head "
        f"{ctx.ledger.hash or '(empty ledger)'} ({ctx.ledger.count} rows)",
        len(theirs),
    )
