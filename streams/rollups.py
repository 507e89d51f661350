"""Minute rollups on event time: `device_rollup_1m` recomputed from the raw samples for every
(device, minute) that a batch added rows to.

Recomputing from `device_samples` (rather than accumulating in memory) makes the rollup a pure function
of the stored samples: a replay, a crashed worker or two workers sharing partitions give the same
numbers as one clean run. A sample whose minute closed more than `allowed_lateness_s` before the newest
event time already stored for its node is stored but does not reopen its minute; it is counted as late.

Columns: `util_avg`, `util_max`, `power_avg`, `temp_avg` over the minute's samples; `samples`;
`seconds_observed` = samples times the nominal interval, at most 60; `energy_j` = the device's energy
counter advance since its previous sample (within three intervals) when the counter is present and did
not reset, else power integrated over the observed seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg

__all__ = ["MINUTE", "minute_of", "partition_late", "update_minute_rollups"]

MINUTE = timedelta(minutes=1)

_UPSERT = """
WITH k AS (
    SELECT DISTINCT * FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[]) AS k(device_id, bucket)
), agg AS (
    SELECT k.device_id, k.bucket,
           avg(s.util_pct)::real AS util_avg, max(s.util_pct) AS util_max,
           avg(s.power_w)::real AS power_avg, avg(s.temp_c)::real AS temp_avg,
           count(*)::int AS samples, max(s.energy_j) AS e_last, min(s.time) AS t_first
    FROM k JOIN device_samples s
      ON s.device_id = k.device_id AND s.time >= k.bucket AND s.time < k.bucket + interval '1 minute'
    GROUP BY k.device_id, k.bucket
)
INSERT INTO device_rollup_1m AS r
    (device_id, bucket, util_avg, util_max, power_avg, energy_j, temp_avg, samples, seconds_observed)
SELECT a.device_id, a.bucket, a.util_avg, a.util_max, a.power_avg,
       CASE WHEN a.e_last IS NOT NULL AND p.energy_j IS NOT NULL AND a.e_last >= p.energy_j
            THEN a.e_last - p.energy_j
            ELSE a.power_avg::float8 * least(60.0, a.samples * %(interval)s) END,
       a.temp_avg, a.samples, least(60.0, a.samples * %(interval)s)::real
FROM agg a
LEFT JOIN LATERAL (
    SELECT ps.energy_j FROM device_samples ps
    WHERE ps.device_id = a.device_id AND ps.time < a.bucket
      AND ps.time >= a.t_first - make_interval(secs => 3 * %(interval)s)
    ORDER BY ps.time DESC LIMIT 1
) p ON true
ON CONFLICT (device_id, bucket) DO UPDATE SET
    util_avg = EXCLUDED.util_avg, util_max = EXCLUDED.util_max, power_avg = EXCLUDED.power_avg,
    energy_j = EXCLUDED.energy_j, temp_avg = EXCLUDED.temp_avg, samples = EXCLUDED.samples,
    seconds_observed = EXCLUDED.seconds_observed
"""


def minute_of(at: datetime) -> datetime:
    """The start of the UTC minute holding `at`."""
    return at.replace(second=0, microsecond=0)


def partition_late(
    rows: Iterable[tuple[int, datetime]], watermarks: Mapping[int, datetime], lateness: timedelta
) -> tuple[set[tuple[int, datetime]], int]:
    """The (device_id, minute) keys to recompute, and how many rows came too late to count.

    `watermarks` maps a device to the newest event time already stored for its node before this batch (a
    node's snapshots arrive in order on one partition, so this is the same however many workers share
    the partitions); a device without one is never late.
    """
    keys: set[tuple[int, datetime]] = set()
    late = 0
    for device_id, at in rows:
        minute = minute_of(at)
        watermark = watermarks.get(device_id)
        if watermark is not None and minute + MINUTE + lateness < watermark:
            late += 1
        else:
            keys.add((device_id, minute))
    return keys, late


def update_minute_rollups(conn: psycopg.Connection[Any], keys: set[tuple[int, datetime]], interval_s: float) -> int:
    """Recompute the minute rollups of `keys` from the raw samples; returns the rows written."""
    if not keys:
        return 0
    ordered = sorted(keys)
    cur = conn.execute(
        _UPSERT, {"ids": [k[0] for k in ordered], "buckets": [k[1] for k in ordered], "interval": interval_s}
    )
    return cur.rowcount
