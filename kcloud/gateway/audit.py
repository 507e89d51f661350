"""The audit trail of the vendor gateway: every request to the `/v1` API leaves one row in
`ingest_audit` (token id presented, its vendor, remote address, snapshots accepted and rejected, body
bytes, HTTP status), whatever its outcome: 202, a refusal, or an error.

`AuditMiddleware` (pure ASGI) puts an `AuditInfo` in the request state for the handlers to fill, and
writes the row when the response starts, before the client sees it: a test (or an operator) can query
the row as soon as the answer arrives. A failed write never changes the answer (the data may already
be on Kafka); it is logged and counted in `kcloud_gateway_audit_failures_total`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kcloud.db.connect import Pool
from kcloud.gateway.metrics import GatewayMetrics

__all__ = ["AUDITED_PREFIX", "AuditInfo", "AuditMiddleware", "audit_of", "write_audit"]

log = logging.getLogger("kcloud.gateway.audit")

AUDITED_PREFIX = "/v1/"
_STATE_KEY = "kcloud_audit"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class AuditInfo:
    """What one request did, filled in by the handlers as they learn it."""

    remote_addr: str | None = None
    token_id: str | None = None
    vendor_id: str | None = None
    accepted: int = 0
    rejected: int = 0
    bytes: int | None = None


def audit_of(request: Request) -> AuditInfo:
    """The request's `AuditInfo` (a throwaway one when the request is not audited)."""
    state = request.scope.setdefault("state", {})
    info = state.get(_STATE_KEY)
    if not isinstance(info, AuditInfo):
        info = state[_STATE_KEY] = AuditInfo()
    return info


def _inet(host: str | None) -> str | None:
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def write_audit(pool: Pool, info: AuditInfo, status: int) -> None:
    """Insert one `ingest_audit` row (blocking; run it off the event loop)."""
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO ingest_audit (token_id, vendor_id, remote_addr, accepted, rejected, bytes, status) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (info.token_id, info.vendor_id, _inet(info.remote_addr), info.accepted, info.rejected, info.bytes, status),
        )


class AuditMiddleware:
    """Writes an `ingest_audit` row for every `/v1/` request and counts it in the metrics."""

    def __init__(self, app: ASGIApp, *, pool: Callable[[], Pool | None], metrics: GatewayMetrics) -> None:
        self.app = app
        self.pool = pool
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(AUDITED_PREFIX):
            await self.app(scope, receive, send)
            return
        info = AuditInfo()
        client = scope.get("client")
        info.remote_addr = client[0] if client else None
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                info.bytes = int(value)
        scope.setdefault("state", {})[_STATE_KEY] = info
        started = time.perf_counter()
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self.metrics.requests.labels(status=str(status)).inc()
            self.metrics.latency.observe(time.perf_counter() - started)
            pool = self.pool()
            if pool is None:
                self.metrics.audit_failures.inc()
                return
            try:
                await run_in_threadpool(write_audit, pool, info, status)
            except Exception as exc:
                self.metrics.audit_failures.inc()
                log.error("gateway: could not write the ingest_audit row of a %d answer to %s: %s", status, info, exc)

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException:
            await record(500)
            raise
