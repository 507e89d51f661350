"""Event-time progress per telemetry partition, and the watermark the silence checks use.

A node's snapshots arrive in order on one partition, so a partition's nodes say how far it has been read.
The watermark for the silence checks (offline devices, silent nodes) is the least progress over the
worker's partitions that are still delivering: a partition that lags (a worker catching up, a replay)
holds the watermark back, so its nodes are never taken for silent just because they have not been read
yet. A partition that has gone quiet (nothing for `idle_after_s` of wall time) stops holding it back; the
watermark never runs ahead of the event times seen.

No node can move anyone else's event time with its own clock: a partition's progress is the lower median
of the newest event times of its nodes that are still delivering (a node quiet for `idle_after_s` drops
out: it is what the silence checks are looking for), each clamped to the worker's wall clock when it
arrived. A clock running ahead (within the accepted window, `kcloud.timewindow`) therefore moves nothing
unless it is the majority of a partition's delivering nodes, and even then never past the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["PartitionProgress", "lower_median"]


@dataclass
class _Seen:
    event_max: datetime
    wall_last: float


def lower_median(values: list[datetime]) -> datetime:
    """The lower of the middle values (the middle one of an odd count): a minority cannot move it up."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PartitionProgress:
    """Newest event time (clamped to the wall clock) and last arrival (monotonic) per node, per partition."""

    def __init__(
        self,
        idle_after_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.idle_after_s = idle_after_s
        self._clock = clock
        self._wall = wall
        self._seen: dict[int, dict[str, _Seen]] = {}

    def update(self, partition: int, node: str, event_time: datetime) -> None:
        """Node `node` of `partition` has been read up to `event_time`."""
        self.update_many([(partition, node, event_time)])

    def update_many(self, seen: Iterable[tuple[int, str, datetime]]) -> None:
        """`update` for each (partition, node, event time), with one reading of the clocks."""
        now, wall = self._clock(), self._wall()
        for partition, node, event_time in seen:
            at = min(event_time, wall)  # a clock running ahead counts as the wall clock, no further
            nodes = self._seen.setdefault(partition, {})
            entry = nodes.get(node)
            if entry is None:
                nodes[node] = _Seen(at, now)
            else:
                entry.event_max = max(entry.event_max, at)
                entry.wall_last = now

    def _progress(self, partition: int, now: float) -> tuple[datetime, bool]:
        """A partition's progress, and whether it is still delivering."""
        nodes = self._seen[partition].values()
        live = [s.event_max for s in nodes if now - s.wall_last <= self.idle_after_s]
        if live:
            return lower_median(live), True
        return lower_median([s.event_max for s in nodes]), False

    def watermark(self, assigned: Collection[int]) -> datetime | None:
        """The event time up to which the nodes of `assigned` partitions have all been read (None: no data)."""
        now = self._clock()
        known = [self._progress(p, now) for p in assigned if self._seen.get(p)]
        if not known:
            return None
        delivering = [at for at, live in known if live]
        return min(delivering) if delivering else max(at for at, _ in known)
