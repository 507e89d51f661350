"""`GET /v1/reports/evidence` (and `/v1/reports/allocation`) for the gateway: the reports over HTTP, as
JSON or CSV, with the query parameters of the CLI (`vendor`, `site`, `programme`, `from`, `to`,
`granularity`, `lang`, `format`, `generated_at`).

The gateway owns authentication: it builds the router with `report_router(settings, authorize)`, where
`authorize` is its FastAPI dependency that admits program-manager tokens only (and raises 401/403
otherwise), and includes it. Bad parameters, unknown filters and periods without data answer 400 with
the same one-sentence message the CLI prints; an unreachable database answers 503.

Example:
    >>> app.include_router(report_router(settings, require_program_manager))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from kcloud.settings import Settings
from reports.build import render
from reports.params import ReportError, ReportParams

__all__ = ["report_router"]

_MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def _build(settings: Settings, kind: str, params: dict[str, Any], fmt: str, generated_at: str | None) -> Response:
    try:
        parsed = ReportParams.parse(kind, **params)
        when = (
            datetime.fromisoformat(generated_at.replace("Z", "+00:00"))
            if generated_at
            else datetime.now(UTC).replace(microsecond=0)
        )
        if when.tzinfo is None:
            raise ReportError(f"generated_at {generated_at!r} has no time zone; add an offset such as Z")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        with psycopg.connect(settings.effective_database_url, connect_timeout=10) as conn:
            data = render(conn, parsed, settings, fmt, when.astimezone(UTC))
    except ReportError as exc:
        raise HTTPException(400, str(exc)) from None
    except psycopg.OperationalError as exc:
        raise HTTPException(503, f"the report database cannot be reached: {str(exc).strip().splitlines()[0]}") from None
    return Response(
        data,
        media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{kind}-{parsed.start.date()}.{fmt}"'},
    )


def report_router(settings: Settings, authorize: Callable[..., Any]) -> APIRouter:
    """The reports' routes, each guarded by the gateway's `authorize` dependency."""
    router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(authorize)])

    def endpoint(kind: str) -> Callable[..., Response]:
        def handler(  # noqa: PLR0917 (FastAPI takes each query parameter as a parameter)
            start: Annotated[str, Query(alias="from", description="First day (YYYY-MM-DD) or exact start time.")],
            end: Annotated[str, Query(alias="to", description="Last day, included, or exact end time, excluded.")],
            vendor: Annotated[str | None, Query(description="Only this vendor.")] = None,
            site: Annotated[str | None, Query(description="Only this site.")] = None,
            programme: Annotated[str | None, Query(description="Only sites of this programme.")] = None,
            granularity: Annotated[str, Query(description="day, month, quarter or year.")] = "month",
            lang: Annotated[str, Query(description="en or ko.")] = "en",
            fmt: Annotated[Literal["json", "csv"], Query(alias="format", description="json or csv.")] = "json",
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

    router.add_api_route(
        "/evidence", endpoint("evidence"), methods=["GET"], summary="The K-Cloud evidence report (JSON or CSV)."
    )
    router.add_api_route(
        "/allocation", endpoint("allocation"), methods=["GET"], summary="The allocation report (JSON or CSV)."
    )
    return router
