"""`GET /v1/reports/evidence` (and `/v1/reports/allocation`) for the gateway: the reports over HTTP, as
JSON or CSV, with the query parameters of the CLI (`vendor`, `site`, `programme`, `from`, `to`,
`granularity`, `lang`, `format`, `generated_at`).

The gateway owns authentication: it builds the router with `report_router(settings, authorize)`, where
`authorize` is its FastAPI dependency that admits program-manager tokens only (and raises 401/403
otherwise), and includes it. Every refusal is the gateway's `ErrorBody` (imported from
`gateway.models`, the API's one error shape), answered by this module itself so that the router
behaves the same in any app: a missing, malformed or out-of-range parameter (a date outside 2000-2100, an
inverted period, an unknown format) answers 422 `invalid_parameter` naming it; unknown filters and
periods without data answer 400 `report_refused` with the same one-sentence message the CLI prints; an
unreachable database (or one not migrated for the reports) answers 503 `database_unavailable`. The
parameters are taken as plain text and checked here (`reports.params`), so FastAPI's own validation
never answers in another shape.

Example:
    >>> app.include_router(report_router(settings, require_program_manager))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from kcloud.api_models import ErrorBody
from kcloud.settings import Settings
from reports.build import render
from reports.params import HTTP_NAMES, ReportError, ReportParamError, ReportParams, parse_generated_at

__all__ = ["REPORT_RESPONSES", "report_router"]

_MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8"}

#: the answers of the report routes besides 200 (the gateway adds those of authentication)
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Unknown vendor, site or programme, or a period without data."},
    422: {
        "model": ErrorBody,
        "description": "A missing, malformed or out-of-range parameter (dates 2000-01-01 to 2100-01-01 UTC, "
        "from before to, at most three years, format json or csv); the message names it.",
    },
    503: {"model": ErrorBody, "description": "The report database cannot be reached."},
}


def _refusal(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, message=message).model_dump(mode="json"), status_code=status)


def _build(
    settings: Settings, kind: str, params: dict[str, Any], fmt: str | None, generated_at: str | None
) -> Response:
    try:
        for key in ("start", "end"):
            if params[key] is None or not params[key].strip():
                raise ReportParamError(
                    key, f"the query parameter {HTTP_NAMES[key]} is required (a day YYYY-MM-DD or a time with offset)"
                )
        chosen = "json" if fmt is None else fmt
        if chosen not in _MEDIA:
            raise ReportParamError("format", f"format {chosen[:60]!r} is unknown; choose json or csv")
        parsed = ReportParams.parse(kind, **params, names=HTTP_NAMES)
        when = parse_generated_at(generated_at, HTTP_NAMES)
    except ReportParamError as exc:
        return _refusal(422, "invalid_parameter", str(exc))
    try:
        with psycopg.connect(settings.effective_database_url, connect_timeout=10) as conn:
            data = render(conn, parsed, settings, chosen, when)
    except ReportParamError as exc:
        return _refusal(422, "invalid_parameter", str(exc))
    except ReportError as exc:
        return _refusal(400, "report_refused", str(exc))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _refusal(503, "database_unavailable", f"the report database cannot be reached: {first}")
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        return _refusal(
            503, "database_unavailable", "the report database is not migrated for reports; run `kcloud db migrate`"
        )
    return Response(
        data,
        media_type=_MEDIA[chosen],
        headers={"Content-Disposition": f'attachment; filename="{kind}-{parsed.start.date()}.{chosen}"'},
    )


def report_router(settings: Settings, authorize: Callable[..., Any]) -> APIRouter:
    """The reports' routes, each guarded by the gateway's `authorize` dependency."""
    router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(authorize)])

    def endpoint(kind: str) -> Callable[..., Response]:
        def handler(  # noqa: PLR0917 (FastAPI takes each query parameter as a parameter)
            start: Annotated[
                str | None, Query(alias="from", description="Required: first day (YYYY-MM-DD) or exact start time.")
            ] = None,
            end: Annotated[
                str | None, Query(alias="to", description="Required: last day, included, or exact end time, excluded.")
            ] = None,
            vendor: Annotated[str | None, Query(description="Only this vendor.")] = None,
            site: Annotated[str | None, Query(description="Only this site.")] = None,
            programme: Annotated[str | None, Query(description="Only sites of this programme.")] = None,
            granularity: Annotated[str, Query(description="day, month, quarter or year.")] = "month",
            lang: Annotated[str, Query(description="en or ko.")] = "en",
            fmt: Annotated[str | None, Query(alias="format", description="json or csv [default: json].")] = None,
            generated_at: Annotated[str | None, Query(description="Generation time to record [default: now].")] = None,
        ) -> Response:
            params = {
                "start": start,
                "end": end,
                "vendor": vendor,
                "site": site,
                "programme": programme,
                "granularity": granularity,
                "lang": lang,
            }
            return _build(settings, kind, params, fmt, generated_at)

        return handler

    for kind, summary in (
        ("evidence", "The K-Cloud evidence report (JSON or CSV)."),
        ("allocation", "The allocation report (JSON or CSV)."),
    ):
        router.add_api_route(
            f"/{kind}",
            endpoint(kind),
            methods=["GET"],
            summary=summary,
            responses={
                200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The report."},
                **REPORT_RESPONSES,
            },
        )
    return router
