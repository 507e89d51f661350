"""`kcloud report ...`: the program managers' commands (mounted by console/main.py as `kcloud report`).

    kcloud report evidence   --from 2026-01-01 --to 2026-03-31 --format pdf --out q1.pdf [--vendor V] [--site S]
    kcloud report allocation --from 2026-01-01 --to 2026-03-31 --format csv --out q1-alloc.csv
    kcloud report verify q1.json

Every error is one message on stderr naming the input, never a traceback: a malformed or out-of-range
option (a date outside 2000-2100, an inverted range, an unknown format) exits 2, like any usage error; an
unknown vendor, a period without data or a database that cannot be reached exits 1; `verify` exits 1
naming the first differing figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from kcloud.cli_context import fail, settings_from
from reports.params import FORMATS, ReportError, ReportParamError, ReportParams, parse_generated_at

#: exit status of a malformed or out-of-range option (click's usage-error status)
USAGE_ERROR = 2

__all__ = ["app"]

app = typer.Typer(
    help="Evidence and allocation reports for program managers (HTML, PDF, CSV, JSON), and their verification.",
    no_args_is_help=True,
)

_Vendor = Annotated[str | None, typer.Option("--vendor", help="Only this vendor (e.g. rebellions) (default: all).")]
_Site = Annotated[str | None, typer.Option("--site", help="Only this site (e.g. kt-cloud-cheonan) (default: all).")]
_Programme = Annotated[
    str | None, typer.Option("--programme", help="Only sites of this programme (sites.programme) (default: all).")
]
_From = Annotated[
    str,
    typer.Option("--from", help="First day (YYYY-MM-DD, UTC) or an exact time with offset (2026-01-01T09:00+09:00)."),
]
_To = Annotated[str, typer.Option("--to", help="Last day, included (YYYY-MM-DD), or an exact end time, excluded.")]
_Gran = Annotated[str, typer.Option("--granularity", help="Periods within the report: day, month, quarter or year.")]
_Lang = Annotated[str, typer.Option("--lang", help="Language of titles and definitions: en or ko.")]
_Format = Annotated[
    str | None, typer.Option("--format", help="html, pdf, csv or json (default: from the --out file's extension).")
]
_Out = Annotated[Path, typer.Option("--out", help="File to write (replaced if it exists).")]
_GeneratedAt = Annotated[
    str | None,
    typer.Option(
        "--generated-at",
        help="Generation time written into the provenance (ISO time with offset) (default: now); fix it to get "
        "byte-identical files from identical data.",
    ),
]


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        fail(f"kcloud report: cannot reach the database: {str(exc).strip().splitlines()[0]}")


def _database_error(exc: psycopg.Error) -> str:
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return "kcloud report: the database is not migrated for reports; run `kcloud db migrate` first"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"kcloud report: database error: {first}"


def _run(
    ctx: typer.Context,
    kind: str,
    *,
    vendor: str | None,
    site: str | None,
    programme: str | None,
    start: str,
    end: str,
    granularity: str,
    lang: str,
    fmt: str | None,
    out: Path,
    generated_at: str | None,
) -> None:
    from reports.build import render

    chosen = fmt or out.suffix.lstrip(".").lower()
    if chosen not in FORMATS:
        fail(
            f"kcloud report: --format {chosen[:60] or '(none)'!r} is unknown; choose one of {', '.join(FORMATS)}",
            USAGE_ERROR,
        )
    try:
        params = ReportParams.parse(
            kind,
            start=start,
            end=end,
            vendor=vendor,
            site=site,
            programme=programme,
            granularity=granularity,
            lang=lang,
        )
        when = parse_generated_at(generated_at)
    except ReportParamError as exc:
        fail(f"kcloud report: {exc}", USAGE_ERROR)
    settings = settings_from(ctx)
    with _connect(settings.effective_database_url) as conn:
        try:
            data = render(conn, params, settings, chosen, when)
        except ReportError as exc:
            fail(f"kcloud report: {exc}")
        except psycopg.Error as exc:
            fail(_database_error(exc))
    try:
        out.write_bytes(data)
    except OSError as exc:
        fail(f"kcloud report: cannot write {out}: {exc.strerror}")
    typer.echo(
        f"wrote {out} ({chosen}, {len(data)} bytes): {kind} report {params.start.date()} to {params.end.isoformat()}"
    )


def _report_command(kind: str, doc: str) -> Callable[..., None]:
    """The command that writes a `kind` report: the same options for every kind (typer reads them from the
    signature)."""

    def command(  # noqa: PLR0917 (typer takes each option as a parameter)
        ctx: typer.Context,
        start: _From,
        end: _To,
        out: _Out,
        vendor: _Vendor = None,
        site: _Site = None,
        programme: _Programme = None,
        granularity: _Gran = "month",
        lang: _Lang = "en",
        fmt: _Format = None,
        generated_at: _GeneratedAt = None,
    ) -> None:
        _run(
            ctx,
            kind,
            vendor=vendor,
            site=site,
            programme=programme,
            start=start,
            end=end,
            granularity=granularity,
            lang=lang,
            fmt=fmt,
            out=out,
            generated_at=generated_at,
        )

    command.__doc__ = doc
    command.__name__ = kind
    return command


app.command("evidence")(
    _report_command(
        "evidence",
        """Inventory, availability, utilization, service, energy and efficiency (beside the same site's GPUs),
    telemetry completeness and provenance, per vendor and site.""",
    )
)
app.command("allocation")(
    _report_command(
        "allocation",
        """Per organisation: allocated vs busy card-hours, idle allocations, workload mix, and a ranked list of
    allocations that could be returned to the pool.""",
    )
)


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A JSON or CSV report written by `kcloud report`.")],
) -> None:
    """Rebuild a JSON or CSV report from the database (same parameters, settings and ledger head) and say
    whether every figure matches; exit 1 naming the first figure that differs."""
    from reports.build import verify

    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"kcloud report: cannot read {file}: {exc.strerror}")
    settings = settings_from(ctx)
    with _connect(settings.effective_database_url) as conn:
        try:
            result = verify(conn, data, str(file))
        except ReportError as exc:
            fail(f"kcloud report: {exc}")
        except psycopg.Error as exc:
            fail(_database_error(exc))
    if not result.ok:
        fail(f"kcloud report: {result.message}")
    typer.echo(result.message)
