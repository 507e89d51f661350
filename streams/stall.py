"""Silence in wall-clock time: the stream workers' watch for a site, or the whole fleet, from which nothing
has been stored for the offline threshold.

Event time cannot say that nothing arrives at all: a partition's watermark stops with its traffic, so
`node_silent` (event time, `streams.alerts`) opens only once data comes back. This watch compares
`nodes.last_received_at` (the database's clock when a node's snapshot was last stored, set by the sink)
with the database's clock now. A site whose every node with a device in service has been quiet for
`offline_after_intervals * sample_interval_s` gets a `site_stalled` alert (warning); when every such site
is quiet at once (a paused collector fleet, a dead broker link, a worker fleet that consumes nothing),
`fleet_stalled` (critical). Both resolve as soon as something is stored again, or when the site has no
device in service any more. The alerts go to the same `alerts` table and `kcloud.alerts.v1` topic as
every other alert, so Grafana and `kcloud alerts` show them with the rest.

Every worker runs the watch on its own connection; the open-alert unique index makes one of them the
opener and one the resolver of each alert. Imports `kcloud` and psycopg only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from kcloud.records import AlertMessage
from kcloud.settings import Settings

__all__ = ["FLEET", "StallWatch", "stall_threshold"]

#: the fingerprint subject of the fleet-wide alert
FLEET = "fleet"

_SITES_SQL = """
SELECT n.site_id, max(n.last_received_at) AS last_received, count(*) AS nodes
FROM nodes n
WHERE n.last_received_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM devices d WHERE d.node_id = n.node_id AND d.status <> 'decommissioned')
GROUP BY n.site_id
ORDER BY n.site_id
"""
_OPEN_SQL = """
SELECT fingerprint, rule, site_id, (details->>'last_received_at')::timestamptz FROM alerts
WHERE resolved_at IS NULL AND rule IN ('site_stalled', 'fleet_stalled')
"""
_INSERT_SQL = """
INSERT INTO alerts (fingerprint, rule, severity, site_id, summary, details, started_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (fingerprint) WHERE resolved_at IS NULL DO NOTHING
RETURNING alert_id
"""
_RESOLVE_SQL = """
UPDATE alerts SET resolved_at = greatest(%s, started_at), updated_at = now(), details = details || %s
WHERE fingerprint = %s AND resolved_at IS NULL
RETURNING started_at, resolved_at, summary, severity, rule, site_id
"""


def stall_threshold(settings: Settings) -> timedelta:
    """How long a site may be quiet on the wall clock: the same threshold as a device going offline."""
    return timedelta(seconds=settings.offline_after_intervals * settings.sample_interval_s)


@dataclass(frozen=True)
class _Site:
    site_id: str
    last_received: datetime
    nodes: int


class StallWatch:
    """Opens and resolves `site_stalled` / `fleet_stalled`; `check()` returns the messages to publish."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url
        self.threshold = stall_threshold(settings)
        self._conn: psycopg.Connection[Any] | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=10)
        return self._conn

    def check(self) -> list[AlertMessage]:
        """One look at the wall clock: open what fell quiet, resolve what speaks again (one transaction)."""
        try:
            conn = self._connection()
            with conn.transaction():
                return self._check(conn)
        except psycopg.Error:
            self.close()
            raise

    def _check(self, conn: psycopg.Connection[Any]) -> list[AlertMessage]:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        sites = [_Site(s, last, int(n)) for s, last, n in conn.execute(_SITES_SQL).fetchall()]
        quiet = {s.site_id: s for s in sites if s.last_received < now - self.threshold}
        by_site = {s.site_id: s for s in sites}
        open_now = {fp: (rule, site, since) for fp, rule, site, since in conn.execute(_OPEN_SQL).fetchall()}
        newest = max((s.last_received for s in sites), default=now)
        out: list[AlertMessage] = []
        limit_s = int(self.threshold.total_seconds())
        # resolved by anything stored since the alert opened, even if the site has fallen quiet again (then a
        # new alert opens below: each stall is its own row, from its own last arrival)
        for fp, (rule, site, since) in sorted(open_now.items()):
            if rule == "site_stalled":
                back = by_site.get(site)
                if back is None or site not in quiet or since is None or back.last_received > since:
                    out.extend(self._resolve(conn, fp, back.last_received if back else now, "telemetry stored again"))
            elif rule == "fleet_stalled" and (len(quiet) < len(sites) or since is None or newest > since):
                out.extend(self._resolve(conn, fp, newest, "telemetry stored again"))
        for site in quiet.values():
            out.extend(
                self._open(
                    conn,
                    rule="site_stalled",
                    subject=site.site_id,
                    site=site.site_id,
                    since=site.last_received,
                    summary=(
                        f"no telemetry stored from site {site.site_id} ({site.nodes} node(s)) for more than "
                        f"{limit_s} s of wall-clock time: its collectors, their network or the broker link"
                    ),
                    details={"nodes": site.nodes},
                )
            )
        if sites and len(quiet) == len(sites):
            out.extend(
                self._open(
                    conn,
                    rule="fleet_stalled",
                    subject=FLEET,
                    site=None,
                    since=newest,
                    summary=(
                        f"no telemetry stored from any of {len(sites)} site(s) for more than {limit_s} s of "
                        "wall-clock time: the collectors, the broker or the stream workers"
                    ),
                    details={"sites": len(sites)},
                )
            )
        return out

    def _open(
        self,
        conn: psycopg.Connection[Any],
        *,
        rule: str,
        subject: str,
        site: str | None,
        since: datetime,
        summary: str,
        details: dict[str, Any],
    ) -> list[AlertMessage]:
        fingerprint = f"{rule}:{subject}"
        started = since + self.threshold
        full = {**details, "last_received_at": since.isoformat(), "threshold_s": self.threshold.total_seconds()}
        severity: Literal["warning", "critical"] = "critical" if rule == "fleet_stalled" else "warning"
        inserted = conn.execute(_INSERT_SQL, (fingerprint, rule, severity, site, summary, Jsonb(full), started))
        if inserted.fetchone() is None:  # already open (another worker was first)
            return []
        return [
            AlertMessage(
                action="opened",
                fingerprint=fingerprint,
                rule=rule,  # type: ignore[arg-type]
                severity=severity,
                site_id=site,
                summary=summary,
                started_at=started,
                details=full,
            )
        ]

    def _resolve(self, conn: psycopg.Connection[Any], fingerprint: str, at: datetime, why: str) -> list[AlertMessage]:
        row = conn.execute(_RESOLVE_SQL, (at, Jsonb({"resolution": why}), fingerprint)).fetchone()
        if row is None:  # another worker resolved it
            return []
        started, resolved, summary, severity, rule, site = row
        return [
            AlertMessage(
                action="resolved",
                fingerprint=fingerprint,
                rule=rule,
                severity=severity,
                site_id=site,
                summary=summary,
                started_at=started,
                resolved_at=resolved,
                details={"resolution": why},
            )
        ]
