"""What one running gateway shares between requests: its settings, the database pool, the Kafka
producer, the rate limiters, the audit writer (with its spool), the health probe, the metrics and the
registrations it has read (`gateway.owners`). Built when the app starts (`GatewayContext.open`),
closed when it stops; handlers reach it through `context_of(request)`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

import psycopg
import psycopg.errors
from psycopg_pool import PoolTimeout
from starlette.requests import Request

from gateway.audit import AuditWriter
from gateway.audit_spool import AuditSpool
from gateway.health import BoundedProbe
from gateway.limits import RateLimiter
from gateway.metrics import GatewayMetrics
from gateway.models import GatewayError
from gateway.owners import OwnerCache
from gateway.produce import KafkaGate
from gateway.registry import StoredToken, find_token
from kcloud.db.connect import Pool, create_pool, redact_url
from kcloud.db.owners import Registrations
from kcloud.settings import Settings

__all__ = ["DB_RETRY_AFTER_S", "GatewayContext", "context_of"]

log = logging.getLogger("gateway")

#: Retry-After of a 503 caused by the database
DB_RETRY_AFTER_S = 5


@dataclass
class GatewayContext:
    """The shared parts of one gateway app."""

    settings: Settings
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    pool: Pool | None = None
    kafka: KafkaGate | None = None
    limiter: RateLimiter | None = None
    #: failed authentications per client address (token guessing): a burst, then one per second
    auth_failures: RateLimiter = field(default_factory=lambda: RateLimiter(rate_per_s=1.0, burst=20))
    #: the registrations (node and device owners) read, kept a while
    owners: OwnerCache = field(default_factory=OwnerCache)
    audit: AuditWriter = field(init=False)
    database_probe: BoundedProbe = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditWriter(lambda: self.pool, AuditSpool(self.settings.gateway_audit_spool_path), self.metrics)
        self.database_probe = BoundedProbe("database", self.database_status)

    def open(self) -> None:
        """Open the database pool (in the background: the gateway starts even while PostgreSQL is away)
        and prepare the Kafka producer (built on the first push)."""
        s = self.settings
        self.pool = create_pool(
            s.effective_database_url,
            min_size=1,
            max_size=8,
            timeout=5.0,
            open_now=False,
            application_name="kcloud-gateway",
        )
        self.pool.open(wait=False)
        self.kafka = KafkaGate(s)
        self.limiter = RateLimiter(s.gateway_rate_per_s, s.gateway_burst)
        self.auth_failures = RateLimiter(rate_per_s=1.0, burst=s.gateway_auth_fail_burst)

    def close(self) -> None:
        """Flush Kafka and close the pool."""
        if self.kafka is not None:
            self.kafka.close()
        if self.pool is not None:
            self.pool.close()

    def _unavailable(self, exc: Exception, what: str = "the gateway cannot check the token now") -> GatewayError:
        lines = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        url = redact_url(self.settings.effective_database_url)
        if isinstance(exc, psycopg.errors.UndefinedTable):
            log.error("gateway: the database %s is not migrated (%s); run `kcloud db migrate`", url, why)
        else:
            log.error("gateway: the database %s does not answer (%s)", url, why)
        return GatewayError(
            503,
            "database_unavailable",
            f"{what}: its database is unavailable; nothing was accepted, try again later",
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    def find_token(self, token_id: str) -> StoredToken | None:
        """The stored token (blocking); a 503 `GatewayError` when the database does not answer."""
        if self.pool is None:
            raise self._unavailable(RuntimeError("not started"))
        try:
            with self.pool.connection() as conn:
                return find_token(conn, token_id)
        except PoolTimeout as exc:  # an OperationalError too, but no connection was there to retry with
            raise self._unavailable(exc) from exc
        except psycopg.OperationalError as exc:
            # after a database restart the idle connections of the pool are dead: drop them, ask once more
            log.info("gateway: a pooled database connection failed (%s); checking the pool and retrying once", exc)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            self.pool.check()
            with self.pool.connection() as conn:
                return find_token(conn, token_id)
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._unavailable(exc) from exc

    def registrations(self, node_ids: Collection[str], device_uuids: Collection[str]) -> Registrations:
        """Who owns the nodes and devices a push names (blocking; see `gateway.owners`); a 503
        `GatewayError` when the database does not answer: nothing is accepted unchecked."""
        what = "the gateway cannot check who owns the pushed nodes and devices now"
        if self.pool is None:
            raise self._unavailable(RuntimeError("not started"), what)
        try:
            return self.owners.registrations(self.pool, node_ids, device_uuids)
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._unavailable(exc, what) from exc

    def database_status(self) -> str:
        """`ok`, or why the database does not answer (blocking: it may wait as long as the database does;
        `/healthz` asks through `database_probe`, which answers within its timeout)."""
        if self.pool is None:
            return "unavailable: not started"
        try:
            with self.pool.connection(timeout=self.settings.gateway_health_timeout_s) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            return f"unavailable: {type(exc).__name__}"
        return "ok"


def context_of(request: Request) -> GatewayContext:
    """The context of the app serving `request`."""
    ctx = request.app.state.gateway
    assert isinstance(ctx, GatewayContext)
    return ctx
