"""The one definition of an acceptable event time (`collected_at`), used by the vendor gateway (which
answers 422) and by the stream ingest (which dead-letters with reason `timestamp_out_of_range`).

A snapshot is acceptable when its `collected_at` is at most `max_clock_ahead_s` after the receiver's
clock (a collector's clock may run a little ahead; more than that is a broken or hostile clock, and
accepting it would move event time for everyone who shares the partition) and at most
`max_backfill_days` before it (and never before the raw-sample retention, whichever is nearer).

Imports only the standard library and `kcloud.records`: every stage may use it.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> w = TimeWindow(max_ahead=timedelta(seconds=300), max_behind=timedelta(days=7))
    >>> now = datetime(2026, 12, 7, tzinfo=UTC)
    >>> w.problem(now + timedelta(minutes=55), now) is not None
    True
    >>> w.problem(now - timedelta(days=1), now) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kcloud.records import InvalidSnapshot

if TYPE_CHECKING:
    from kcloud.settings import Settings

__all__ = ["REASON", "TimeWindow"]

#: the dead-letter reason (and the gateway's error code) of a time outside the window
REASON = "timestamp_out_of_range"


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    return f"{seconds} s"


@dataclass(frozen=True)
class TimeWindow:
    """How far ahead of and behind the receiver's clock an event time may be."""

    max_ahead: timedelta
    max_behind: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> TimeWindow:
        behind = min(settings.max_backfill_days, settings.retention_days)
        return cls(timedelta(seconds=settings.max_clock_ahead_s), timedelta(days=behind))

    def problem(self, at: datetime, now: datetime) -> str | None:
        """Why `at` is not acceptable at `now` (a sentence), or None when it is."""
        if at > now + self.max_ahead:
            return (
                f"collected_at {at.isoformat()} is {_span(at - now)} ahead of the receiver's clock "
                f"({now.isoformat()}); at most {_span(self.max_ahead)} ahead is accepted: fix the collector's clock"
            )
        if at < now - self.max_behind:
            return (
                f"collected_at {at.isoformat()} is older than the backfill limit of {_span(self.max_behind)} "
                f"(KCLOUD_MAX_BACKFILL_DAYS, never beyond the retention)"
            )
        return None

    def check(self, at: datetime, now: datetime) -> None:
        """Raise `InvalidSnapshot(REASON, …)` when `at` is outside the window at `now`."""
        why = self.problem(at, now)
        if why is not None:
            raise InvalidSnapshot(REASON, why)
