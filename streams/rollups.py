"""Minute rollups on event time: `device_rollup_1m` computed from the raw samples once a minute has closed.

Computing from `device_samples` (rather than accumulating in memory) makes the rollup a pure function of
the stored samples: a replay, a crashed worker or two workers sharing partitions give the same numbers as
one clean run. `OpenMinutes` keeps, per node, the (device, minute) keys stored but not rolled up yet. A
node's snapshots arrive in order on one partition, so its minute is complete once the node has sent a
snapshot of a later minute: the batch that stores it rolls the earlier minute up, in the same transaction
(one computation per device and minute, not one per batch). A node that stops sending has its open
minutes rolled up by the sweep once it has been idle for a while (wall clock), and so has a node whose
partition went to another worker. A worker that takes over a partition recomputes the newest minute of
each of its nodes (the one its previous owner may have left open), and on first meeting a node it also
reopens the minute of the node's previous snapshot.

A sample whose minute closed more than `allowed_lateness_s` before the newest event time already stored
for its node is stored but does not reopen its minute; it is counted as late. A sample that arrives out
of order within the lateness reopens its minute, which is computed again.

Columns: `util_avg`, `util_max`, `power_avg`, `temp_avg` over the minute's samples; `samples`;
`seconds_observed` = samples times the nominal interval, at most 60; `energy_j` = the device's energy
counter advance since its previous sample (within three intervals) when the counter is present and did
not reset, else power integrated over the observed seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

__all__ = ["MINUTE", "MinuteKey", "MinutePlan", "OpenMinutes", "is_late", "minute_of", "update_minute_rollups"]

MinuteKey = tuple[int, datetime]

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
WHERE (r.util_avg, r.util_max, r.power_avg, r.energy_j, r.temp_avg, r.samples, r.seconds_observed)
      IS DISTINCT FROM (EXCLUDED.util_avg, EXCLUDED.util_max, EXCLUDED.power_avg, EXCLUDED.energy_j,
                        EXCLUDED.temp_avg, EXCLUDED.samples, EXCLUDED.seconds_observed)
"""


def minute_of(at: datetime) -> datetime:
    """The start of the UTC minute holding `at`."""
    return at.replace(second=0, microsecond=0)


def is_late(minute: datetime, watermark: datetime | None, lateness: timedelta) -> bool:
    """Whether samples of `minute` come too late to count: the minute closed more than `lateness` before
    `watermark`, the newest event time already stored for their node (a node's snapshots arrive in order on
    one partition, so this is the same however many workers share the partitions; None: never late)."""
    return watermark is not None and minute + MINUTE + lateness < watermark


def update_minute_rollups(conn: psycopg.Connection[Any], keys: set[tuple[int, datetime]], interval_s: float) -> int:
    """Recompute the minute rollups of `keys` from the raw samples; returns the rows written."""
    if not keys:
        return 0
    ordered = sorted(keys)
    cur = conn.execute(
        _UPSERT, {"ids": [k[0] for k in ordered], "buckets": [k[1] for k in ordered], "interval": interval_s}
    )
    return cur.rowcount


@dataclass
class _NodeMinutes:
    minutes: dict[datetime, set[int]] = field(default_factory=dict)
    partition: int | None = None
    touched: float = 0.0


@dataclass(frozen=True)
class MinutePlan:
    """What a batch does to the open minutes: the keys to roll up now, and the nodes' entries afterwards
    (applied with `OpenMinutes.commit` once the transaction has committed)."""

    close: set[MinuteKey]
    entries: dict[str, _NodeMinutes | None]  # None: forget the node (its partition went elsewhere)
    partitions: frozenset[int | None] = frozenset()


class OpenMinutes:
    """The (device, minute) keys stored and not rolled up yet, per node, for one sink."""

    def __init__(self, idle_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_after_s = idle_after_s
        self._clock = clock
        self._nodes: dict[str, _NodeMinutes] = {}  # the nodes met since their partition was assigned
        self._covered: set[int] = set()  # partitions whose nodes' newest minutes were recomputed
        self._to_recover: dict[int, list[str]] = {}  # partition -> nodes whose newest minute to recompute

    def __len__(self) -> int:
        return sum(len(devs) for entry in self._nodes.values() for devs in entry.minutes.values())

    def plan_batch(
        self,
        stored: Mapping[str, Mapping[datetime, Collection[int]]],
        devices: Mapping[str, Collection[int]],
        previous: Mapping[str, datetime],
        newest: Mapping[str, datetime],
        partitions: Mapping[str, int],
    ) -> MinutePlan:
        """The plan for a batch. Per node: `stored` the devices newly stored (not late) per minute, `devices` in
        the batch, `previous` newest event time before the batch, `newest` after it, `partitions` the
        telemetry partition."""
        now = self._clock()
        close: set[MinuteKey] = set()
        entries: dict[str, _NodeMinutes | None] = {}
        for node, node_devices in devices.items():
            old = self._nodes.get(node)
            entry = _NodeMinutes(
                {m: set(d) for m, d in old.minutes.items()} if old is not None else {},
                partitions.get(node, old.partition if old is not None else None),
                now,
            )
            if old is None and (prev := previous.get(node)) is not None:
                # first meeting since this sink started: the previous owner may have left this minute open
                entry.minutes.setdefault(minute_of(prev), set()).update(node_devices)
            for minute, ids in stored.get(node, {}).items():
                entry.minutes.setdefault(minute, set()).update(ids)
            horizon = minute_of(newest[node])
            for minute in [m for m in entry.minutes if m < horizon]:
                close.update((device_id, minute) for device_id in entry.minutes.pop(minute))
            entries[node] = entry
        return MinutePlan(close, entries)

    def plan_sweep(self, assigned: Collection[int] | None) -> MinutePlan:
        """Close the open minutes of nodes idle for `idle_after_s` and of nodes whose partition is not in
        `assigned` (None: close every open minute); nodes of partitions gone elsewhere are forgotten, so that
        they are met anew if their partition comes back."""
        now = self._clock()
        close: set[MinuteKey] = set()
        entries: dict[str, _NodeMinutes | None] = {}
        parts: set[int | None] = set()
        for node, entry in self._nodes.items():
            lost = assigned is not None and entry.partition is not None and entry.partition not in assigned
            if entry.minutes and (assigned is None or lost or now - entry.touched >= self.idle_after_s):
                close.update((device_id, minute) for minute, devs in entry.minutes.items() for device_id in devs)
                entries[node] = _NodeMinutes({}, entry.partition, entry.touched)
                parts.add(entry.partition)
            if lost:
                entries[node] = None
        return MinutePlan(close, entries, frozenset(parts))

    def uncovered(self, assigned: Collection[int]) -> list[int]:
        """Partitions of `assigned` new to this sink: the newest minute of each of their nodes is to be
        recomputed (`queue_recovery`), the one a previous owner may have left open."""
        return sorted(set(assigned) - self._covered - set(self._to_recover))

    def queue_recovery(self, nodes: Mapping[int, list[str]]) -> None:
        """The nodes of newly assigned partitions, whose newest minutes are to be recomputed."""
        for part, names in nodes.items():
            self._to_recover[part] = list(names)

    def recovery_chunk(self, limit: int) -> list[str]:
        """Up to `limit` queued nodes to recompute now; nodes met meanwhile need nothing (their first batch
        reopened the minute of their previous snapshot)."""
        chunk: list[str] = []
        for names in self._to_recover.values():
            names[:] = [n for n in names if n not in self._nodes]
            chunk.extend(names[: limit - len(chunk)])
            if len(chunk) >= limit:
                break
        return chunk

    def recovered(self, nodes: Collection[str]) -> None:
        """`nodes` were recomputed (the transaction committed); a partition with none left is covered."""
        done = set(nodes)
        for part in list(self._to_recover):
            left = [n for n in self._to_recover[part] if n not in done]
            if left:
                self._to_recover[part] = left
            else:
                del self._to_recover[part]
                self._covered.add(part)

    def commit(self, plan: MinutePlan) -> None:
        """Apply a plan whose transaction committed."""
        for node, entry in plan.entries.items():
            if entry is None:
                self._nodes.pop(node, None)
            else:
                self._nodes[node] = entry

    def forget_partitions(self, assigned: Collection[int]) -> None:
        """Partitions no longer assigned are recomputed again when they come back."""
        self._covered.intersection_update(assigned)
        for part in [p for p in self._to_recover if p not in assigned]:
            del self._to_recover[part]
