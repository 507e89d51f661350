"""Hourly and daily rollups from the minute rollups: refreshed by the service on plain PostgreSQL, by
TimescaleDB's continuous aggregates (on demand here, and by their policies) on TimescaleDB.

The stream processor writes `device_rollup_1m`; `refresh_rollups(conn, since, until)` then brings
`device_rollup_1h` (from the minute rows) and `device_rollup_1d` (from the hourly rows) up to date for
every bucket touching [since, until). Averages are weighted by the samples behind each row, so an hour
is the mean of its samples rather than the mean of its minutes; `util_max` is the maximum, `energy_j`,
`samples` and `seconds_observed` are sums. Buckets are UTC-aligned. A day is built from its hours (as
TimescaleDB's hierarchical aggregates do), which equals the mean over its minutes unless a metric is
null in some minutes of an hour and not others (the weights count every sample of the row).

On plain PostgreSQL this is `INSERT ... SELECT date_bin(...) ... ON CONFLICT DO UPDATE` (rows whose
values did not change are not rewritten) plus removal of buckets whose source rows are gone. Rerunning
it over the same window changes nothing. Call it with a window that covers every minute row written
or changed since the last call (e.g. from the earliest bucket of the batch to now).

Example:
    >>> refresh_rollups(conn, since=last_run, until=now)  # doctest: +SKIP
    RollupReport(mode='postgresql', hourly_upserted=120, daily_upserted=10, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import sql

from kcloud.db.connect import Connection
from kcloud.db.errors import DatabaseError
from kcloud.db.mode import ModeName, recorded_mode
from kcloud.db.schema import ROLLUP_COLUMNS
from kcloud.db.timescale import refresh_caggs

__all__ = ["BUCKET_ORIGIN", "RollupReport", "bucket_ceil", "bucket_floor", "refresh_rollups"]

#: the origin of every bucket: UTC midnight, so hours and days line up with UTC calendar days
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

_VALUES = [c for c in ROLLUP_COLUMNS if c not in ("device_id", "bucket")]
_UPSERT = """
INSERT INTO {target} AS r ({columns})
SELECT device_id, date_bin(%(width)s, bucket, %(origin)s) AS b,
       (sum(util_avg::float8 * samples)
           / nullif(sum(CASE WHEN util_avg IS NOT NULL THEN samples END), 0))::real,
       max(util_max),
       (sum(power_avg::float8 * samples)
           / nullif(sum(CASE WHEN power_avg IS NOT NULL THEN samples END), 0))::real,
       sum(energy_j),
       (sum(temp_avg::float8 * samples)
           / nullif(sum(CASE WHEN temp_avg IS NOT NULL THEN samples END), 0))::real,
       sum(samples)::integer,
       sum(seconds_observed::float8)::real
FROM {source}
WHERE bucket >= %(lo)s AND bucket < %(hi)s
GROUP BY device_id, b
ON CONFLICT (device_id, bucket) DO UPDATE SET ({values}) = ({excluded})
WHERE ({current}) IS DISTINCT FROM ({excluded})
"""
_PRUNE = """
DELETE FROM {target} AS r
WHERE r.bucket >= %(lo)s AND r.bucket < %(hi)s
  AND NOT EXISTS (
      SELECT 1 FROM {source} AS s
      WHERE s.device_id = r.device_id AND s.bucket >= r.bucket AND s.bucket < r.bucket + %(width)s
  )
"""


@dataclass(frozen=True)
class RollupReport:
    """What one refresh did: rows written or removed per level, and the bucket-aligned windows."""

    mode: ModeName
    hourly_window: tuple[datetime, datetime]
    daily_window: tuple[datetime, datetime]
    hourly_upserted: int = 0
    hourly_removed: int = 0
    daily_upserted: int = 0
    daily_removed: int = 0


def bucket_floor(when: datetime, width: timedelta) -> datetime:
    """The start of the UTC-aligned bucket of `width` holding `when` (aware datetimes only)."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: pass timezone-aware (UTC) datetimes")
    steps = (when - BUCKET_ORIGIN) // width
    return BUCKET_ORIGIN + steps * width


def bucket_ceil(when: datetime, width: timedelta) -> datetime:
    """The first bucket boundary at or after `when`."""
    start = bucket_floor(when, width)
    return start if start == when else start + width


def _level(
    conn: Connection, source: str, target: str, width: timedelta, window: tuple[datetime, datetime]
) -> tuple[int, int]:
    names = {"target": sql.Identifier(target), "source": sql.Identifier(source)}
    params = {"width": width, "origin": BUCKET_ORIGIN, "lo": window[0], "hi": window[1]}
    upsert = sql.SQL(_UPSERT).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, ROLLUP_COLUMNS)),
        values=sql.SQL(", ").join(map(sql.Identifier, _VALUES)),
        excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in _VALUES),
        current=sql.SQL(", ").join(sql.Identifier("r", c) for c in _VALUES),
        **names,
    )
    upserted = conn.execute(upsert, params).rowcount
    removed = conn.execute(sql.SQL(_PRUNE).format(**names), params).rowcount
    return max(upserted, 0), max(removed, 0)


def refresh_rollups(conn: Connection, since: datetime, until: datetime) -> RollupReport:
    """Bring `device_rollup_1h` and `device_rollup_1d` up to date for every bucket touching [since, until).

    Plain PostgreSQL: runs in one transaction (a savepoint if `conn` is already in one). TimescaleDB:
    calls `refresh_continuous_aggregate` on both views, which needs `conn` outside a transaction.
    Raises `DatabaseError` if the database has not been migrated.
    """
    if until < since:
        raise ValueError(f"refresh_rollups: until {until.isoformat()} is before since {since.isoformat()}")
    hourly = (bucket_floor(since, HOUR), bucket_ceil(until, HOUR))
    daily = (bucket_floor(since, DAY), bucket_ceil(until, DAY))
    if hourly[0] == hourly[1]:
        hourly = (hourly[0], hourly[0] + HOUR)
    if daily[0] == daily[1]:
        daily = (daily[0], daily[0] + DAY)
    recorded = recorded_mode(conn)
    if recorded is None:
        raise DatabaseError(
            f"refresh_rollups: database {conn.info.dbname!r} has no recorded storage mode; "
            "run `kcloud db migrate` first"
        )
    mode = recorded[0]
    if mode == "timescaledb":
        refresh_caggs(conn, [("device_rollup_1h", *hourly), ("device_rollup_1d", *daily)])
        return RollupReport(mode, hourly, daily)
    with conn.transaction():
        h_up, h_rm = _level(conn, "device_rollup_1m", "device_rollup_1h", HOUR, hourly)
        d_up, d_rm = _level(conn, "device_rollup_1h", "device_rollup_1d", DAY, daily)
    return RollupReport(mode, hourly, daily, h_up, h_rm, d_up, d_rm)
