"""The audit trail of the vendor gateway: every request to the `/v1` API leaves one row in
`ingest_audit` (request id, time, token id presented, its vendor, remote address, snapshots accepted and
rejected, body bytes, HTTP status), whatever its outcome: 202, a refusal, or an error.

`AuditMiddleware` (pure ASGI) puts an `AuditInfo` in the request state for the handlers to fill, and
writes the row when the response starts, before the client sees it: a test (or an operator) can query
the row as soon as the answer arrives. The answer carries the row's request id in `X-Request-Id`.

A failed write never changes the answer (the data may already be on Kafka), and a write the database
does not answer (frozen) is given up after 3 s, so the answer is not held for longer. The row is kept in the
`AuditSpool` file instead (durable before the answer leaves) and replayed into `ingest_audit` when the
database answers again: after the next row that is written, and at start-up (`AuditWriter.replay`).
Rows are inserted with their request id under a unique index, so each is stored exactly once. Rows kept
are counted in `kcloud_gateway_audit_failures_total`; a row that can be neither written nor kept is
logged in full.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.audit_spool import AuditSpool
from gateway.metrics import GatewayMetrics
from kcloud.db.connect import Pool

__all__ = [
    "AUDITED_PREFIX",
    "REQUEST_ID_HEADER",
    "AuditInfo",
    "AuditMiddleware",
    "AuditWriter",
    "audit_of",
    "insert_audit_rows",
]

log = logging.getLogger("gateway.audit")

AUDITED_PREFIX = "/v1/"
REQUEST_ID_HEADER = "X-Request-Id"
_STATE_KEY = "kcloud_audit"
#: longest an audit write waits for a database connection before the row goes to the spool
_WRITE_TIMEOUT_S = 2.0
#: longest the start-up replay waits for the database
_STARTUP_TIMEOUT_S = 10.0

_INSERT = (
    "INSERT INTO ingest_audit (request_id, at, token_id, vendor_id, remote_addr, accepted, rejected, bytes, status) "
    "VALUES (%(request_id)s, %(at)s, %(token_id)s, %(vendor_id)s, %(remote_addr)s, %(accepted)s, %(rejected)s, "
    "%(bytes)s, %(status)s) ON CONFLICT (request_id) DO NOTHING"
)

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
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self, status: int) -> dict[str, Any]:
        """The `ingest_audit` row of this request answered `status` (JSON-able)."""
        return {
            "request_id": self.request_id,
            "at": self.at.isoformat(),
            "token_id": self.token_id,
            "vendor_id": self.vendor_id,
            "remote_addr": _inet(self.remote_addr),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "bytes": self.bytes,
            "status": status,
        }


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


def insert_audit_rows(pool: Pool, rows: list[dict[str, Any]], timeout: float = _WRITE_TIMEOUT_S) -> None:
    """Insert `ingest_audit` rows in one transaction; a row whose request id is stored already is skipped
    (blocking; run it off the event loop)."""
    with pool.connection(timeout=timeout) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


class AuditWriter:
    """Writes audit rows to the database, keeps those it cannot write in the spool, and replays the spool
    once the database takes rows again. Thread-safe; every method blocks."""

    def __init__(self, pool: Callable[[], Pool | None], spool: AuditSpool, metrics: GatewayMetrics) -> None:
        self.pool = pool
        self.spool = spool
        self.metrics = metrics
        self._replaying = threading.Lock()

    def write(self, info: AuditInfo, status: int) -> None:
        """Store the row of a request answered `status`: in the database, else in the spool. Returns within
        about `_WRITE_TIMEOUT_S` + 1 s even when the database hangs (frozen): the insert runs in a thread
        of its own, and a row it has not stored by then is kept in the spool; should the insert still
        succeed later, the replay finds the row's request id stored and skips it."""
        row = info.row(status)
        pool = self.pool()
        try:
            if pool is None:
                raise RuntimeError("the database pool is not open")
            self._insert_in_thread(pool, row).result(timeout=_WRITE_TIMEOUT_S + 1.0)
        except Exception as exc:
            why = f"no answer within {_WRITE_TIMEOUT_S + 1.0:g} s" if isinstance(exc, TimeoutError) else str(exc)
            self._keep(row, why)

    def _insert_in_thread(self, pool: Pool, row: dict[str, Any]) -> Future[None]:
        done: Future[None] = Future()

        def run() -> None:
            try:
                insert_audit_rows(pool, [row])
            except Exception as exc:
                done.set_exception(exc)
                return
            done.set_result(None)
            if self.spool.pending and not self._replaying.locked():
                self.replay()

        threading.Thread(target=run, name="kcloud-audit-write", daemon=True).start()
        return done

    def _keep(self, row: dict[str, Any], why: str) -> None:
        self.metrics.audit_failures.inc()
        try:
            self.spool.append(row)
        except OSError as spool_exc:
            log.error(
                "gateway: the ingest_audit row %s could not be written (%s) nor kept in %s (%s)",
                row,
                why,
                self.spool.path,
                spool_exc,
            )
            return
        log.warning(
            "gateway: could not write the ingest_audit row of a %d answer (request %s): %s; kept in %s until "
            "the database answers",
            row["status"],
            row["request_id"],
            why,
            self.spool.path,
        )

    def replay(self, timeout: float = _WRITE_TIMEOUT_S) -> int:
        """Store the spooled rows (each once) and empty the spool; 0 when another replay runs, the spool is
        empty, or the database does not answer (the rows stay kept)."""
        if not self.spool.pending or not self._replaying.acquire(blocking=False):
            return 0
        try:
            pool = self.pool()
            if pool is None:
                return 0
            replayed = self.spool.replay(lambda rows: insert_audit_rows(pool, rows, timeout))
        except Exception as exc:
            log.warning("gateway: kept ingest_audit rows not replayed yet (%s); trying again after the next write", exc)
            return 0
        finally:
            self._replaying.release()
        if replayed:
            log.info("gateway: replayed %d kept ingest_audit row(s) from %s", replayed, self.spool.path)
        return replayed

    def replay_at_startup(self) -> int:
        """The start-up replay: waits up to 10 s for the database."""
        return self.replay(_STARTUP_TIMEOUT_S)


class AuditMiddleware:
    """Writes an `ingest_audit` row for every `/v1/` request and counts it in the metrics."""

    def __init__(self, app: ASGIApp, *, writer: AuditWriter, metrics: GatewayMetrics) -> None:
        self.app = app
        self.writer = writer
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
            await run_in_threadpool(self.writer.write, info, status)

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await record(int(message["status"]))
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER.lower().encode(), info.request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException:
            await record(500)
            raise
