"""TimescaleDB specifics: policies kept in step with the settings, continuous-aggregate refresh, and
what `kcloud db status` shows about hypertables.

Only called in TimescaleDB mode. The migration `timescale/0002_timeseries.sql` creates the hypertables,
continuous aggregates and the first policies; `sync_policies` (run by every `migrate`) replaces the
retention and compression policies when `retention_days` or `compress_after_days` changed since, and
does nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from kcloud.db.connect import Connection
from kcloud.db.errors import DatabaseError
from kcloud.settings import Settings

__all__ = [
    "CAGGS",
    "HypertableInfo",
    "Policy",
    "compression_segmentby",
    "hypertables",
    "policies",
    "refresh_caggs",
    "sync_policies",
]

#: continuous aggregates in refresh order (each is built on the one before it, the first on device_rollup_1m)
CAGGS = ("device_rollup_1h", "device_rollup_1d")
_SAMPLES = "device_samples"
# proc_name -> (config key, add function, remove function, settings field)
_POLICIES = {
    "policy_retention": ("drop_after", "add_retention_policy", "remove_retention_policy", "retention_days"),
    "policy_compression": (
        "compress_after",
        "add_compression_policy",
        "remove_compression_policy",
        "compress_after_days",
    ),
}


@dataclass(frozen=True)
class HypertableInfo:
    """A hypertable: its chunk count and whether compression (the columnstore) is enabled."""

    name: str
    chunks: int
    compression_enabled: bool


@dataclass(frozen=True)
class Policy:
    """A background job: its kind (`policy_retention`, ...), the relation it serves, and its config."""

    job_id: int
    proc_name: str
    relation: str
    schedule_interval: str
    config: dict[str, Any]


def hypertables(conn: Connection) -> list[HypertableInfo]:
    """The hypertables of the database (caggs' own materialisation tables excluded)."""
    rows = conn.execute(
        "SELECT hypertable_name::text, num_chunks, compression_enabled "
        "FROM timescaledb_information.hypertables ORDER BY hypertable_name"
    ).fetchall()
    return [HypertableInfo(str(n), int(c or 0), bool(e)) for n, c, e in rows]


def policies(conn: Connection) -> list[Policy]:
    """The policy jobs (retention, compression/columnstore, cagg refresh) with their relations."""
    rows = conn.execute(
        "SELECT j.job_id, j.proc_name::text, coalesce(c.view_name, j.hypertable_name)::text, "
        "j.schedule_interval::text, j.config "
        "FROM timescaledb_information.jobs j "
        "LEFT JOIN timescaledb_information.continuous_aggregates c "
        "  ON c.materialization_hypertable_name = j.hypertable_name "
        "WHERE j.proc_name LIKE 'policy_%' ORDER BY j.job_id"
    ).fetchall()
    return [Policy(int(i), str(p), str(r), str(s), dict(cfg or {})) for i, p, r, s, cfg in rows]


def compression_segmentby(conn: Connection, table: str) -> list[str]:
    """The segment-by columns of `table`'s compression settings (either generation of the views)."""
    has_new = conn.execute(
        "SELECT to_regclass('timescaledb_information.hypertable_compression_settings') IS NOT NULL"
    ).fetchone()
    if has_new and has_new[0]:
        row = conn.execute(
            "SELECT segmentby FROM timescaledb_information.hypertable_compression_settings "
            "WHERE hypertable = to_regclass(%s)",
            (table,),
        ).fetchone()
        value = str(row[0]) if row and row[0] else ""
        return [c.strip() for c in value.split(",") if c.strip()]
    rows = conn.execute(
        "SELECT attname::text FROM timescaledb_information.compression_settings "
        "WHERE hypertable_name = %s AND segmentby_column_index IS NOT NULL ORDER BY segmentby_column_index",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def sync_policies(conn: Connection, settings: Settings) -> list[str]:
    """Make the retention and compression policies of `device_samples` match the settings.

    Returns one sentence per change (empty when they already match: nothing is touched then).
    """
    changes: list[str] = []
    with conn.transaction():
        for proc, (key, add_fn, remove_fn, field_name) in _POLICIES.items():
            days = int(getattr(settings, field_name))
            row = conn.execute(
                "SELECT (config->>%s)::interval = make_interval(days => %s), config->>%s "
                "FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = %s",
                (key, days, key, proc, _SAMPLES),
            ).fetchone()
            if row is not None and row[0]:
                continue
            if row is not None:
                conn.execute(f"SELECT {remove_fn}(%s)".encode(), (_SAMPLES,))
            conn.execute(f"SELECT {add_fn}(%s, {key} => make_interval(days => %s))".encode(), (_SAMPLES, days))
            was = f" (was {row[1]})" if row is not None else ""
            changes.append(f"{_SAMPLES} {key} set to {days} days{was}")
    return changes


def refresh_caggs(conn: Connection, windows: Sequence[tuple[str, datetime, datetime]]) -> list[str]:
    """Refresh each continuous aggregate `(view, start, end)` in the order given; returns the views.

    Windows should be aligned to the view's buckets (TimescaleDB refreshes only whole buckets inside a
    window). `refresh_continuous_aggregate` cannot run inside a transaction: `conn` must not be in one
    (it is switched to autocommit for the calls and given back as it was).
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise DatabaseError(
            "refresh_rollups: on TimescaleDB the refresh cannot run inside a transaction; "
            "commit or roll back the connection first"
        )
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        for view, start, end in windows:
            conn.execute(
                "CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz, %s::timestamptz)",
                (view, start, end),
            )
    finally:
        conn.autocommit = was_autocommit
    return [view for view, _start, _end in windows]
