"""The vendor push gateway as a FastAPI app: the `/v1` API (authenticated, rate-limited, audited),
`GET /healthz`, `GET /metrics` (Prometheus) and `GET /openapi.json`.

`create_app(settings)` builds it; `kcloud gateway` serves it with uvicorn. The `/v1` routers are
listed in `ROUTERS`, the one place a new endpoint is mounted: a router's routes
declare `Depends(require_role(...))` from `gateway.auth` and get authentication, rate
limiting and the audit row for free.

Example:
    >>> app = create_app(load_settings())
    >>> uvicorn.run(app, host="127.0.0.1", port=8470)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from gateway import push
from gateway.audit import AuditMiddleware
from gateway.auth import AUTH_RESPONSES, require_role
from gateway.context import GatewayContext, context_of
from gateway.models import GatewayError, Health
from kcloud.kafka_client import ensure_topics
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings

__all__ = ["ROUTERS", "create_app"]

log = logging.getLogger("gateway")

#: the modules whose `router` is mounted under the app; add one to mount a new endpoint (a module may
#: also have `refresh_openapi()`, called before the OpenAPI document is built)
ROUTERS: list[ModuleType] = [push]

_DESCRIPTION = """\
The kcloud-observatory vendor push gateway: accelerator vendors push node snapshots
(`kcloud.telemetry/1`, one JSON object or NDJSON) with a token from `kcloud vendor token create`.
A push is answered 202 only once Kafka has acknowledged every accepted snapshot."""


def _ensure_topics(settings: Settings) -> None:
    try:
        created = ensure_topics(settings)
    except Exception as exc:
        log.warning(
            "gateway: could not check the Kafka topics at %s (%s); pushes get 503 until Kafka answers",
            settings.kafka_bootstrap,
            exc,
        )
        return
    if created:
        log.info("gateway: created Kafka topic(s) %s", ", ".join(created))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, built anew each time: a router module's `refresh_openapi()`, where it has one,
    brings its examples up to date first (a snapshot example is only accepted with a current time)."""
    for module in ROUTERS:
        refresh = getattr(module, "refresh_openapi", None)
        if callable(refresh):
            refresh()
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    snapshot = NodeSnapshot.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(snapshot.pop("$defs", {}))
    components["NodeSnapshot"] = snapshot
    app.openapi_schema = schema
    return schema


#: a router of readers (program managers): built with the settings and the dependency that admits the role
ReaderRouter = Callable[[Settings, Any], APIRouter]


def create_app(
    settings: Settings, extra_routers: Iterable[APIRouter] = (), reader_routers: Iterable[ReaderRouter] = ()
) -> FastAPI:
    """The gateway app for `settings`; `extra_routers` are mounted after those of `ROUTERS`, and each of
    `reader_routers` (other stages' endpoints, such as the reports: the application passes them in) behind
    the `program-manager` role."""
    ctx = GatewayContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.open()
        threading.Thread(target=_ensure_topics, args=(settings,), daemon=True, name="kcloud-topics").start()
        threading.Thread(target=ctx.audit.replay_at_startup, daemon=True, name="kcloud-audit-replay").start()
        try:
            yield
        finally:
            await run_in_threadpool(ctx.close)

    app = FastAPI(
        title="kcloud vendor gateway",
        version="1",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = ctx
    app.add_middleware(AuditMiddleware, writer=ctx.audit, metrics=ctx.metrics)

    @app.exception_handler(GatewayError)
    async def refused(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body().model_dump(mode="json"), status_code=exc.status, headers=exc.headers)

    @app.get(
        "/healthz",
        response_model=Health,
        tags=["operations"],
        responses={503: {"model": Health, "description": "The database or Kafka does not answer (named)."}},
    )
    async def healthz(request: Request) -> JSONResponse:
        """Whether the gateway can take pushes: 200 when its database answers and Kafka has not failed, 503
        naming the dependency that does not. Answers within `KCLOUD_GATEWAY_HEALTH_TIMEOUT_S` even while
        the database hangs."""
        c = context_of(request)
        database = await c.database_probe.status(c.settings.gateway_health_timeout_s)
        kafka = c.kafka.status() if c.kafka is not None else "unavailable: not started"
        down = [name for name, state in (("database", database), ("kafka", kafka)) if state != "ok"]
        health = Health(status="unavailable" if down else "ok", database=database, kafka=kafka, unavailable=down)
        return JSONResponse(health.model_dump(), status_code=503 if down else 200)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
    )
    async def metrics(request: Request) -> Response:
        """The gateway's Prometheus metrics."""
        return Response(generate_latest(context_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for module in ROUTERS:
        app.include_router(module.router)
    for reader in reader_routers:
        app.include_router(
            reader(settings, require_role("program-manager")),
            responses={
                **AUTH_RESPONSES,
                400: {"description": "Bad parameters (unknown vendor, inverted dates, no data), with the reason."},
            },
        )
    for router in extra_routers:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
