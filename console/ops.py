"""The operator's views behind `kcloud status` and `kcloud alerts`: every component's state in one look,
and the alerts the stream workers opened and resolved.

Reads only: Kafka (the stream workers' consumer group and its committed offsets), PostgreSQL (storage mode,
alerts, the ledger head) and the gateway's `/healthz`. Nothing here starts, stops or writes anything.
Imports infra, kcloud.db, kcloud.ledger, kcloud.settings and kcloud.topics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.db.mode import recorded_mode, server_version
from kcloud.ledger import head
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY

__all__ = ["AlertRow", "Check", "WorkerGroup", "fetch_alerts", "status_checks", "worker_group"]

OK, FAIL, NONE = "ok", "FAIL", "--"


@dataclass(frozen=True)
class Check:
    """One line of `kcloud status`: a component, its state (`ok`, `FAIL`, or `--` for not running, which is
    not a failure) and what was seen."""

    component: str
    state: str
    detail: str

    def line(self) -> str:
        return f"{self.state:<4} {self.component:<10} {self.detail}"


@dataclass
class WorkerGroup:
    """The stream workers' consumer group: its members and the records not yet consumed per partition."""

    group: str
    members: list[str] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)
    state: str = ""

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


#: a faust worker announces its web server's URL in its group membership metadata (its user data)
_WEB_URL = re.compile(r'"url":\s*"(http[^"\\]+)"')


def _member_name(member: dict[str, Any]) -> str:
    """A member as an operator knows it: a faust worker by its web server's URL, else client id and host.
    The URL is looked for in the whole member, however far kafka-python decoded its metadata."""
    found = _WEB_URL.search(repr(member))
    if found:
        return found.group(1)
    host = str(member.get("client_host") or "").lstrip("/")
    return f"{member.get('client_id') or member.get('member_id')}@{host}"


@contextlib.contextmanager
def _quiet_kafka() -> Iterator[None]:
    """kafka-python warns (on stderr, without logging set up) that it cannot decode faust's group metadata
    and that a consumer without a group does not commit: neither is news to an operator."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def worker_group(settings: Settings, timeout_ms: int = 5000) -> WorkerGroup:
    """The members of the workers' consumer group (`settings.app_id`) and its lag on the telemetry topic
    (end offset minus committed offset; a partition never committed counts from its first offset)."""
    with _quiet_kafka():
        return _worker_group(settings, timeout_ms)


def _worker_group(settings: Settings, timeout_ms: int) -> WorkerGroup:
    topic = settings.topic(TELEMETRY)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=timeout_ms, client_id="kcloud-status"
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=timeout_ms, client_id="kcloud-status"
    )
    try:
        described: dict[str, Any] = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
        group = WorkerGroup(settings.app_id, state=str(described.get("group_state") or ""))
        for member in described.get("members") or []:
            group.members.append(_member_name(member))
        committed: dict[Any, Any] = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id) or {}
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        ends: dict[Any, int] = consumer.end_offsets(tps) if tps else {}
        starts: dict[Any, int] = consumer.beginning_offsets(tps) if tps else {}
        for tp in tps:
            meta = committed.get(tp)
            at = meta.offset if meta is not None and meta.offset is not None and meta.offset >= 0 else starts[tp]
            group.lag[tp.partition] = max(0, int(ends[tp]) - int(at))
        return group
    finally:
        consumer.close()
        admin.close()


def _database(settings: Settings) -> list[Check]:
    try:
        with psycopg.connect(settings.effective_database_url, connect_timeout=5) as conn:
            version = server_version(conn)
            mode = recorded_mode(conn)
            if mode is None:
                return [Check("storage", FAIL, f"PostgreSQL {version}, not migrated: run `kcloud db migrate`")]
            checks = [Check("storage", OK, f"{mode[0]} on PostgreSQL {version} ({mode[1]})")]
            rows = conn.execute(
                "SELECT severity, count(*) FROM alerts WHERE resolved_at IS NULL GROUP BY severity ORDER BY 1"
            ).fetchall()
            total = sum(int(n) for _, n in rows)
            by = ", ".join(f"{n} {sev}" for sev, n in rows)
            checks.append(Check("alerts", OK, f"{total} open" + (f" ({by}); `kcloud alerts` lists them" if by else "")))
            h = head(conn)
            ledger = f"{h.count} row(s), head seq {h.seq}, hash {h.hash[:16]}..." if h.hash else "empty"
            checks.append(Check("ledger", OK, ledger + "; `kcloud ledger verify` proves it"))
            return checks
    except psycopg.Error as exc:
        return [Check("storage", FAIL, f"cannot read the database: {str(exc).strip().splitlines()[0]}")]


def _workers(settings: Settings) -> Check:
    try:
        group = worker_group(settings)
    except Exception as exc:
        return Check("workers", FAIL, f"cannot read consumer group {settings.app_id!r}: {type(exc).__name__}: {exc}")
    lag = " ".join(f"{p}:{n}" for p, n in sorted(group.lag.items()))
    where = f"; lag by partition {lag} (total {group.total_lag})"
    if not group.members:
        return Check("workers", NONE, f"none in group {group.group!r} (`kcloud streams worker` starts one){where}")
    names = ", ".join(group.members)
    return Check("workers", OK, f"{len(group.members)} in group {group.group!r} ({names}){where}")


def _gateway(settings: Settings) -> Check:
    url = f"http://{settings.gateway_host}:{settings.gateway_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return Check("gateway", OK, f"{url}: {resp.read().decode(errors='replace').strip()}")
    except urllib.error.HTTPError as exc:  # it answers, unhealthy
        return Check("gateway", FAIL, f"{url}: {exc.code} {exc.read().decode(errors='replace').strip()[:200]}")
    except (OSError, ValueError):
        return Check("gateway", NONE, f"not running on {url} (`kcloud gateway` starts it)")


def _reachable(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """Whether any of the bootstrap servers accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def status_checks(settings: Settings) -> list[Check]:
    """Every component, in pipeline order: PostgreSQL, Kafka, storage mode, workers, gateway, alerts,
    ledger. Components further on are checked only where what they need answers."""
    pg = PostgresService(settings).status()
    if _reachable(settings.kafka_bootstrap):
        kafka = KafkaService(settings).status()
        kafka_ok, kafka_detail = kafka.healthy, kafka.detail
    else:  # no broker listens: say so now rather than after the admin client's retries
        kafka_ok, kafka_detail = False, f"nothing accepts connections on {settings.kafka_bootstrap}"
    checks = [
        Check("postgres", OK if pg.healthy else FAIL, pg.detail),
        Check("kafka", OK if kafka_ok else FAIL, kafka_detail),
    ]
    database = _database(settings) if pg.healthy else []
    checks.extend(database[:1])
    if kafka_ok:
        checks.append(_workers(settings))
    checks.append(_gateway(settings))
    checks.extend(database[1:])
    return checks


@dataclass(frozen=True)
class AlertRow:
    """One alert as `kcloud alerts` shows it."""

    started_at: datetime
    resolved_at: datetime | None
    severity: str
    rule: str
    node_id: str | None
    device_uuid: str | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "severity": self.severity,
            "rule": self.rule,
            "node_id": self.node_id,
            "device_uuid": self.device_uuid,
            "summary": self.summary,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def fetch_alerts(
    conn: psycopg.Connection[Any],
    *,
    state: str = "all",
    since: timedelta | None = None,
    rule: str | None = None,
    severity: str | None = None,
    node: str | None = None,
    limit: int = 50,
) -> list[AlertRow]:
    """Alerts, newest first: `state` open, resolved or all; `since`: started or resolved within it (open
    alerts always pass); `node` matches the node id or a prefix of it."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if state == "open":
        where.append("a.resolved_at IS NULL")
    elif state == "resolved":
        where.append("a.resolved_at IS NOT NULL")
    if since is not None:
        where.append(
            "(a.resolved_at IS NULL OR a.started_at >= now() - %(since)s OR a.resolved_at >= now() - %(since)s)"
        )
        params["since"] = since
    if rule:
        where.append("a.rule = %(rule)s")
        params["rule"] = rule
    if severity:
        where.append("a.severity = %(severity)s")
        params["severity"] = severity
    if node:
        where.append("a.node_id LIKE %(node)s")
        params["node"] = node.replace("%", r"\%").replace("_", r"\_") + "%"
    sql = (
        "SELECT a.started_at, a.resolved_at, a.severity, a.rule, a.node_id, d.device_uuid, a.summary "
        "FROM alerts a LEFT JOIN devices d USING (device_id)"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY (a.resolved_at IS NULL) DESC, coalesce(a.resolved_at, a.started_at) DESC, a.alert_id DESC"
        + " LIMIT %(limit)s"
    )
    return [AlertRow(*row) for row in conn.execute(sql, params).fetchall()]
