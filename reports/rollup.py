"""The reports' own rollup (`device_report_1h`, `device_report_1d`): served throughput per device, bucket
and workload, and how many samples carried an energy counter, kept beside the device rollups.

The device rollups hold utilization, power and energy but not throughput, and raw samples are far too
many to scan for a quarter. Before a report reads a period, `refresh_report_rollup` brings this rollup
up to date for the report's devices: a (device, bucket) is recomputed from `device_samples` when its
sample count differs from the device rollup's (new, late or replayed data), so a report never reads a
stale figure and an unchanged period costs one comparison. A bucket whose raw samples are gone (past
retention) keeps its rows. The minute edges of a period are read from `device_samples` directly.

A sample whose throughput is outside the catalogue's range (`reports.quality`: infinite, NaN, negative or
above 1e9 per second) counts as a sample without a throughput (workload 0), and in that row's
`excluded_samples`, so that the bucket's sample count still matches and the report can say what it left out.

Example:
    >>> refresh_report_rollup(conn, tiles(start, end), device_ids, interval_s=10.0)  # doctest: +SKIP
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from reports.periods import LEVEL_WIDTH, Level, Tile
from reports.quality import BAD_THROUGHPUT, bounds

__all__ = ["refresh_report_rollup"]

_STALE = """
SELECT r.device_id, r.bucket
FROM {rollup} r
LEFT JOIN (
    SELECT device_id, bucket, sum(samples) AS samples FROM {report}
    WHERE bucket >= %(lo)s AND bucket < %(hi)s GROUP BY device_id, bucket
) t USING (device_id, bucket)
WHERE r.bucket >= %(lo)s AND r.bucket < %(hi)s AND r.device_id = ANY(%(ids)s)
  AND t.samples IS DISTINCT FROM r.samples
ORDER BY 1, 2
"""
_FRESH_HOURS = """
CREATE TEMP TABLE report_fresh ON COMMIT DROP AS
SELECT s.device_id, date_bin('1 hour', s.time, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket,
       (CASE WHEN {bad} THEN 0 ELSE coalesce(s.workload_id, 0) END)::smallint AS workload_id,
       count(*)::int AS samples,
       coalesce(sum(s.throughput::float8 * %(interval)s) FILTER (WHERE NOT {bad}), 0) AS units,
       count(s.energy_j)::int AS counter_samples, count(*) FILTER (WHERE {bad})::int AS excluded_samples
FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[]) AS k(device_id, bucket)
JOIN device_samples s ON s.device_id = k.device_id AND s.time >= k.bucket AND s.time < k.bucket + %(width)s
GROUP BY 1, 2, 3
"""
_REPLACE_HOURS = (
    "DELETE FROM device_report_1h r USING (SELECT DISTINCT device_id, bucket FROM report_fresh) f "
    "WHERE r.device_id = f.device_id AND r.bucket = f.bucket",
    "INSERT INTO device_report_1h (device_id, bucket, workload_id, samples, units, counter_samples, excluded_samples) "
    "SELECT device_id, bucket, workload_id, samples, units, counter_samples, excluded_samples FROM report_fresh",
    "DROP TABLE report_fresh",
)
_FRESH_DAYS = """
CREATE TEMP TABLE report_fresh_days ON COMMIT DROP AS
SELECT h.device_id, date_bin('1 day', h.bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket, h.workload_id,
       sum(h.samples)::int AS samples, sum(h.units) AS units, sum(h.counter_samples)::int AS counter_samples,
       sum(h.excluded_samples)::int AS excluded_samples
FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[]) AS k(device_id, bucket)
JOIN device_report_1h h ON h.device_id = k.device_id AND h.bucket >= k.bucket AND h.bucket < k.bucket + interval '1 day'
GROUP BY 1, 2, 3
"""
_REPLACE_DAYS = (
    "DELETE FROM device_report_1d r USING (SELECT DISTINCT device_id, bucket FROM report_fresh_days) f "
    "WHERE r.device_id = f.device_id AND r.bucket = f.bucket",
    "INSERT INTO device_report_1d (device_id, bucket, workload_id, samples, units, counter_samples, excluded_samples) "
    "SELECT device_id, bucket, workload_id, samples, units, counter_samples, excluded_samples FROM report_fresh_days",
    "DROP TABLE report_fresh_days",
)


def _stale(
    conn: psycopg.Connection[Any], level: str, lo: datetime, hi: datetime, ids: Sequence[int]
) -> list[tuple[int, datetime]]:
    query = _STALE.format(rollup=f"device_rollup_{level}", report=f"device_report_{level}")
    return [(int(r[0]), r[1]) for r in conn.execute(query, {"lo": lo, "hi": hi, "ids": list(ids)}).fetchall()]


def _recompute_hours(
    conn: psycopg.Connection[Any], keys: Sequence[tuple[int, datetime]], width: Level, interval_s: float
) -> None:
    b = bounds()
    conn.execute(
        _FRESH_HOURS.replace("{bad}", BAD_THROUGHPUT.replace("throughput", "s.throughput")),
        {
            "ids": [k[0] for k in keys],
            "buckets": [k[1] for k in keys],
            "width": LEVEL_WIDTH[width],
            "interval": interval_s,
            "t_min": b.throughput_min,
            "t_max": b.throughput_max,
        },
    )
    for statement in _REPLACE_HOURS:
        conn.execute(statement)


def refresh_report_rollup(
    conn: psycopg.Connection[Any], tiles: Sequence[Tile], device_ids: Sequence[int], interval_s: float
) -> int:
    """Recompute the stale (device, bucket) pairs of the hour and day `tiles` for `device_ids`, in one
    transaction; returns how many pairs were recomputed."""
    done = 0
    with conn.transaction():
        for level, lo, hi in tiles:
            if level == "1m":
                continue
            stale = _stale(conn, level, lo, hi, device_ids)
            if not stale:
                continue
            done += len(stale)
            _recompute_hours(conn, stale, level, interval_s)
            if level == "1d":
                conn.execute(_FRESH_DAYS, {"ids": [k[0] for k in stale], "buckets": [k[1] for k in stale]})
                for statement in _REPLACE_DAYS:
                    conn.execute(statement)
    return done
