"""Report requests are bounded before any database work (dates and generation times inside 2000-2100, filters
the database can take as text), and the bounds on stored values are the metric catalogue's (pure, no
database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcloud.catalog import load_catalog
from reports.params import (
    CLI_NAMES,
    EARLIEST,
    HTTP_NAMES,
    LATEST,
    ReportParamError,
    ReportParams,
    parse_generated_at,
)
from reports.quality import Exclusions, bounds
from reports.spans import Event, device_spans


@pytest.mark.parametrize(
    ("start", "end", "param"),
    [
        ("0001-01-01", "9999-12-31", "start"),
        ("2026-01-01", "9999-12-31", "end"),
        ("1999-12-31", "2000-01-02", "start"),
        ("2099-12-01", "2100-01-01", "end"),
        ("2026-01-01T00:00+14:00", "0001-01-01T00:00+14:00", "end"),
        ("0001-01-01T00:00+14:00", "2026-01-01", "start"),
        ("9999-12-31T23:59-14:00", "2026-01-01", "start"),
    ],
)
def test_dates_outside_the_years_reports_cover_are_named(start: str, end: str, param: str) -> None:
    with pytest.raises(ReportParamError, match="outside the years reports cover") as cli:
        ReportParams.parse("evidence", start=start, end=end)
    assert cli.value.param == param
    assert str(cli.value).startswith(CLI_NAMES[param] + " ")
    with pytest.raises(ReportParamError) as http:
        ReportParams.parse("evidence", start=start, end=end, names=HTTP_NAMES)
    assert str(http.value).startswith(HTTP_NAMES[param] + " ")


def test_the_last_day_of_the_range_is_a_valid_period() -> None:
    p = ReportParams.parse("evidence", start="2099-12-01", end="2099-12-31")
    assert p.end == LATEST
    assert ReportParams.parse("evidence", start="2000-01-01", end="2000-01-01").start == EARLIEST


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9999-12-31T23:59:59-14:00", "outside the years reports cover"),
        ("0001-01-01T00:00:00+14:00", "outside the years reports cover"),
        ("2101-01-01T00:00Z", "outside the years reports cover"),
        ("2026-04-01T00:00", "has no time zone"),
        ("yesterday", "is not an ISO time"),
    ],
)
def test_generation_times_are_bounded_and_named(text: str, message: str) -> None:
    with pytest.raises(ReportParamError, match=message) as exc:
        parse_generated_at(text)
    assert str(exc.value).startswith("--generated-at ")
    assert exc.value.param == "generated_at"


@pytest.mark.parametrize("value", ["nv\x00idia", "a\nb", "x" * 201, "\udcff"])
def test_filters_the_database_cannot_take_are_refused_naming_the_option(value: str) -> None:
    with pytest.raises(ReportParamError, match=r"^--site ") as exc:
        ReportParams.parse("evidence", start="2026-01-01", end="2026-01-02", site=value)
    assert exc.value.param == "site"


_ZONES = [timezone(timedelta(minutes=m)) for m in range(-14 * 60, 14 * 60 + 1, 15)]
_TEXT = st.one_of(
    st.datetimes(timezones=st.none() | st.sampled_from(_ZONES)).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.text(max_size=30),
)


@given(start=_TEXT, end=_TEXT, generated_at=_TEXT)
def test_any_text_gives_a_bounded_period_or_a_named_refusal(start: str, end: str, generated_at: str) -> None:
    try:
        p = ReportParams.parse("evidence", start=start, end=end, names=HTTP_NAMES)
    except ReportParamError as exc:
        assert exc.param in HTTP_NAMES
    else:
        assert EARLIEST <= p.start < p.end <= LATEST
    try:
        when = parse_generated_at(generated_at, HTTP_NAMES)
    except ReportParamError as exc:
        assert str(exc).startswith("generated_at ")
    else:
        assert EARLIEST <= when <= LATEST and when.tzinfo is UTC


def test_stored_value_bounds_are_the_catalogues() -> None:
    catalog = load_catalog()
    b = bounds()
    assert (b.throughput_min, b.throughput_max) == (catalog.metric("throughput").range.min, 1e9)  # type: ignore[union-attr]
    assert b.power_max == catalog.metric("power_w").range.max  # type: ignore[union-attr]
    assert (b.util_min, b.util_max) == (0.0, 100.0)
    # an hour of a device at the catalogue's highest power, with the counter's look-back
    assert b.energy_max(3600.0, 10.0) == 5000.0 * 3630.0


def test_exclusions_are_stated_with_their_counts_and_reason() -> None:
    ex = Exclusions(throughput_samples=3, util_rows=2, util_samples=12, energy_rows=1, energy_samples=6)
    ex.add(Exclusions(rows=1, row_samples=6))
    lines = ex.lines("sapeon at nhn-cloud-gwangju", bounds())
    assert len(lines) == 4
    assert "the throughput of 3 sample(s)" in lines[0] and "above 1e+09 per second" in lines[0]
    assert "the utilization of 2 rollup row(s) (12 sample(s))" in lines[1]
    assert "the energy of 1 rollup row(s) (6 sample(s))" in lines[2] and "5000 W" in lines[2]
    assert "1 rollup row(s) (6 sample(s)) are left out of every figure" in lines[3]
    assert Exclusions().lines("x", bounds()) == []
    assert len(ex.lines("x", bounds(), energy=False)) == 3
    assert datetime(2000, 1, 1, tzinfo=UTC) == EARLIEST


@pytest.mark.parametrize("last_seen", ["9999-12-31T23:59:59+00:00", "2026-01-01T01:00", "soon", "0001-01-01T00:00Z"])
def test_an_offline_event_with_an_unusable_last_seen_counts_from_the_event(last_seen: str) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        Event(t + timedelta(hours=1), "offline", {"last_seen": last_seen}),
        Event(t + timedelta(hours=2), "returned"),
    ]
    s = device_spans(t, [], events, t, t + timedelta(days=1), interval=timedelta(seconds=10))
    start = t if last_seen.startswith("0001") else t + timedelta(hours=1)  # an old last_seen clips to the period
    assert s.down == [(start, t + timedelta(hours=2))]
