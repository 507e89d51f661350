"""Event-time progress per telemetry partition, and the watermark the silence checks use.

A node's snapshots arrive in order on one partition, so a partition's newest event time says how far its
nodes have been read. The watermark for the silence checks (offline devices, silent nodes) is the least
progress over the worker's partitions that are still delivering: a partition that lags (a worker
catching up, a replay) holds the watermark back, so its nodes are never taken for silent just because
they have not been read yet. A partition that has gone quiet (nothing for `idle_after_s` of wall time)
stops holding it back; the watermark never runs ahead of the newest event time seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

__all__ = ["PartitionProgress"]


@dataclass
class _Seen:
    event_max: datetime
    wall_last: float


class PartitionProgress:
    """Newest event time and last arrival (wall clock) per partition."""

    def __init__(self, idle_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_after_s = idle_after_s
        self._clock = clock
        self._seen: dict[int, _Seen] = {}

    def update(self, partition: int, event_time: datetime) -> None:
        now = self._clock()
        seen = self._seen.get(partition)
        if seen is None:
            self._seen[partition] = _Seen(event_time, now)
        else:
            seen.event_max = max(seen.event_max, event_time)
            seen.wall_last = now

    def watermark(self, assigned: Collection[int]) -> datetime | None:
        """The event time up to which the nodes of `assigned` partitions have all been read (None: no data)."""
        known = [self._seen[p] for p in assigned if p in self._seen]
        if not known:
            return None
        newest = max(s.event_max for s in known)
        now = self._clock()
        delivering = [s.event_max for s in known if now - s.wall_last <= self.idle_after_s]
        return min(delivering) if delivering else newest
