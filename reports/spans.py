"""From a device's ledger events to the time spans the availability figures are made of (pure, no I/O).

For one device and a report period [start, end):

* in service: from the device's first sample (`devices.first_seen`) on, except while `decommissioned`
  (until a `returned`); time decommissioned is planned time out of service;
* unplanned downtime: an `offline` spell, from one sample interval after the last sample (the first
  sample that did not come, `details.last_seen` + interval) until `returned`, and a `failed` health
  spell, from `health_changed` to failed until the next `health_changed`; overlapping spells are one
  outage. An `offline` event whose details say `"planned": true` is maintenance: planned, not a failure;
* a failure is an outage that starts inside the period.

Events before `start` matter only through the state they leave (`prior`): the newest availability
event (offline/returned/decommissioned) and the newest health change before the period.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> ev = [Event(t + timedelta(hours=1, minutes=1), "offline", {"last_seen": (t + timedelta(hours=1)).isoformat()}),
    ...       Event(t + timedelta(hours=2), "returned", {})]
    >>> s = device_spans(t, ev, [], t, t + timedelta(days=1), interval=timedelta(seconds=10))
    >>> s.service_seconds, s.down_seconds, s.failures
    (86400.0, 3590.0, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["DeviceSpans", "Event", "Span", "device_spans", "merge"]

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Event:
    """One ledger row, reduced to what the availability needs."""

    at: datetime
    event: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeviceSpans:
    """A device's spans inside the period, each list disjoint and sorted."""

    service: list[Span]
    planned: list[Span]  # decommissioned or in planned maintenance, after the device was first seen
    down: list[Span]  # unplanned, inside service
    failures: int  # outages that started inside the period
    outage_starts: list[datetime]  # start of each outage overlapping the period (for per-period counts)

    @property
    def service_seconds(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.service)

    @property
    def down_seconds(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.down)

    @property
    def planned_seconds(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.planned)


def merge(spans: Sequence[Span]) -> list[Span]:
    """The union of `spans` as sorted, disjoint spans (empty ones dropped)."""
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _intersect(spans: Sequence[Span], cover: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in spans:
        for c, d in cover:
            x, y = max(a, c), min(b, d)
            if y > x:
                out.append((x, y))
    return merge(out)


def _subtract(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in spans:
        cursor = a
        for c, d in holes:
            if d <= cursor or c >= b:
                continue
            if c > cursor:
                out.append((cursor, c))
            cursor = max(cursor, d)
        if cursor < b:
            out.append((cursor, b))
    return out


def _offline_start(ev: Event, interval: timedelta) -> datetime:
    seen = ev.details.get("last_seen")
    if isinstance(seen, str):
        try:
            last = datetime.fromisoformat(seen)
            if last.tzinfo is not None:
                return min(last + interval, ev.at)
        except (ValueError, OverflowError):  # malformed, or at datetime's last instant: the event's own time
            pass
    return ev.at


def device_spans(
    first_seen: datetime,
    prior: Sequence[Event],
    events: Sequence[Event],
    start: datetime,
    end: datetime,
    *,
    interval: timedelta,
) -> DeviceSpans:
    """The spans of one device in [start, end): `prior` = its newest availability and health events
    before `start`, `events` = its events inside the period in ledger order."""
    horizon = min(start, first_seen)
    out_since: datetime | None = None  # decommissioned since
    off_since: datetime | None = None  # unplanned offline since
    maint_since: datetime | None = None  # planned offline since
    failed_since: datetime | None = None
    outs: list[Span] = []
    offs: list[Span] = []
    maints: list[Span] = []
    fails: list[Span] = []

    def close_offline(at: datetime) -> None:
        nonlocal off_since, maint_since
        if off_since is not None:
            offs.append((off_since, at))
        if maint_since is not None:
            maints.append((maint_since, at))
        off_since = maint_since = None

    for ev in [*sorted(prior, key=lambda e: e.at), *events]:
        at = max(ev.at, horizon)
        if ev.event == "offline":
            went = max(_offline_start(ev, interval), horizon)
            if ev.details.get("planned") is True:
                maint_since = maint_since or went
            else:
                off_since = off_since or went
        elif ev.event == "returned":
            close_offline(at)
            if out_since is not None:
                outs.append((out_since, at))
                out_since = None
        elif ev.event == "decommissioned":
            close_offline(at)
            if failed_since is not None:
                fails.append((failed_since, at))
                failed_since = None
            out_since = out_since or at
        elif ev.event == "health_changed":
            to = ev.details.get("to")
            if to == "failed":
                failed_since = failed_since or at
            elif failed_since is not None:
                fails.append((failed_since, at))
                failed_since = None
    far = max(end, horizon)
    close_offline(far)
    if out_since is not None:
        outs.append((out_since, far))
    if failed_since is not None:
        fails.append((failed_since, far))

    period = [(max(start, first_seen), end)] if first_seen < end else []
    planned_all = merge(outs + maints)
    service = _subtract(period, planned_all)
    planned = _intersect(planned_all, period)
    outages = _subtract(merge(offs + fails), planned_all)
    down = _intersect(outages, service)
    starts = [a for a, b in outages if b > start and a < end]
    failures = sum(1 for a in starts if a >= start)
    return DeviceSpans(service, planned, down, failures, starts)
