"""Report inputs are checked before any database work, and availability spans follow the ledger's rules
(pure functions, no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from reports.model import Column, Table, format_value
from reports.params import ReportError, ReportParams
from reports.periods import period_bounds, period_label, tiles
from reports.spans import Event, device_spans

T = datetime(2026, 1, 1, tzinfo=UTC)
TEN = timedelta(seconds=10)


def test_plain_dates_cover_whole_days_both_ends_included() -> None:
    p = ReportParams.parse("evidence", start="2026-01-01", end="2026-03-31", granularity="quarter")
    assert (p.start, p.end) == (T, datetime(2026, 4, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-01", "2026-02-01", "is not before --to"),
        ("2026-13-01", "2026-02-01", "--from '2026-13-01' is not a date"),
        ("2026-01-01T10:00", "2026-02-01", "has no time zone"),
        ("2026-01-01T10:00:30Z", "2026-02-01", "not on a whole minute"),
        ("2020-01-01", "2026-02-01", "split the report"),
    ],
)
def test_bad_periods_are_named(start: str, end: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        ReportParams.parse("evidence", start=start, end=end)


def test_unknown_granularity_and_language_are_named() -> None:
    with pytest.raises(ReportError, match="--granularity 'week' is unknown"):
        ReportParams.parse("evidence", start="2026-01-01", end="2026-01-02", granularity="week")
    with pytest.raises(ReportError, match="--lang 'fr' is unknown"):
        ReportParams.parse("evidence", start="2026-01-01", end="2026-01-02", lang="fr")


def test_tiles_cover_the_period_exactly_with_the_coarsest_rollups() -> None:
    start, end = datetime(2026, 1, 1, 22, 30, tzinfo=UTC), datetime(2026, 1, 4, 0, 5, tzinfo=UTC)
    pieces = tiles(start, end)
    assert [lv for lv, _, _ in pieces] == ["1m", "1h", "1d", "1m"]
    assert pieces[0][1] == start and pieces[-1][2] == end
    assert all(a[2] == b[1] for a, b in itertools.pairwise(pieces))


def test_periods_follow_the_calendar_and_say_when_clipped() -> None:
    bounds = period_bounds(datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), "month")
    assert [b.month for b in bounds] == [1, 2, 3, 4]
    assert period_label(bounds[1], bounds[2], "month") == "2026-02"
    assert period_label(bounds[0], bounds[1], "month").startswith("2026-01 [2026-01-15")
    assert period_label(T, datetime(2026, 4, 1, tzinfo=UTC), "quarter") == "2026-Q1"


def test_offline_spell_counts_from_the_first_missed_sample_until_return() -> None:
    seen = T + timedelta(hours=1)
    events = [Event(seen + timedelta(seconds=60), "offline", {"last_seen": seen.isoformat()}),
              Event(seen + timedelta(minutes=30), "returned", {})]  # fmt: skip
    s = device_spans(T, [], events, T, T + timedelta(days=1), interval=TEN)
    assert s.down_seconds == 30 * 60 - 10
    assert s.failures == 1


def test_decommissioned_time_is_planned_and_not_downtime() -> None:
    events = [Event(T + timedelta(hours=6), "decommissioned", {"explicit": True})]
    s = device_spans(T, [], events, T, T + timedelta(days=1), interval=TEN)
    assert s.service_seconds == 6 * 3600
    assert s.planned_seconds == 18 * 3600
    assert s.down_seconds == 0 and s.failures == 0


def test_an_outage_begun_before_the_period_is_downtime_but_not_a_new_failure() -> None:
    prior = [Event(T - timedelta(hours=1), "health_changed", {"from": "ok", "to": "failed"})]
    events = [Event(T + timedelta(hours=2), "health_changed", {"from": "failed", "to": "ok"})]
    s = device_spans(T - timedelta(days=3), prior, events, T, T + timedelta(days=1), interval=TEN)
    assert s.down_seconds == 2 * 3600
    assert s.failures == 0


def test_planned_maintenance_is_not_a_failure() -> None:
    events = [
        Event(T + timedelta(hours=1), "offline", {"planned": True}),
        Event(T + timedelta(hours=2), "returned", {}),
    ]
    s = device_spans(T, [], events, T, T + timedelta(days=1), interval=TEN)
    assert (s.down_seconds, s.failures, s.planned_seconds) == (0, 0, 3600)


def test_figures_are_rounded_once_and_written_the_same_everywhere() -> None:
    t = Table("x", [Column("k", key=True), Column("v", "%", 2)])
    t.add(["a", -0.0001])
    assert t.rows == [["a", 0.0]]
    assert format_value(t.rows[0][1], 2) == "0.00"
    assert format_value(None, 2) == ""
    assert format_value(12, None) == "12"
