"""Hourly and daily rollups refreshed from the minute rows equal a direct aggregate over those rows."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from kcloud.db.connect import Connection
from kcloud.db.rollups import bucket_floor, refresh_rollups

START = datetime(2026, 3, 13, 22, 30, tzinfo=UTC)  # crosses midnight, so two days and four hours
MINUTES = 150
Row = tuple[int, datetime, float | None, float | None, float | None, float | None, float | None, int, float]


def _minute_rows(seed: int = 7, gaps: bool = True) -> list[Row]:
    rng = random.Random(seed)
    rows: list[Row] = []
    for device_id in (1, 2, 3):
        for i in range(MINUTES):
            if rng.random() < 0.05:
                continue  # a missing minute
            samples = rng.choice([6, 6, 6, 5, 3])
            util = None if gaps and device_id == 3 and i % 7 == 0 else round(rng.uniform(0, 100), 2)
            rows.append(
                (
                    device_id,
                    START + timedelta(minutes=i),
                    util,
                    None if util is None else min(100.0, util + rng.uniform(0, 10)),
                    round(rng.uniform(80, 700), 1),
                    rng.uniform(1000, 40000),
                    None if gaps and device_id == 2 and i % 11 == 0 else round(rng.uniform(30, 85), 1),
                    samples,
                    samples * 10.0,
                )
            )
    return rows


def _load(conn: Connection, rows: list[Row]) -> None:
    with conn.cursor().copy(
        "COPY device_rollup_1m (device_id, bucket, util_avg, util_max, power_avg, energy_j, temp_avg, "
        "samples, seconds_observed) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def _weighted(pairs: list[tuple[float | None, int]]) -> float | None:
    known = [(v, n) for v, n in pairs if v is not None]
    if not known:
        return None
    return sum(v * n for v, n in known) / sum(n for _, n in known)


def _expected(rows: list[Row], width: timedelta) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    groups: dict[tuple[int, datetime], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row[0], bucket_floor(row[1], width))].append(row)
    out = {}
    for key, members in groups.items():
        out[key] = (
            _weighted([(r[2], r[7]) for r in members]),
            max((r[3] for r in members if r[3] is not None), default=None),
            _weighted([(r[4], r[7]) for r in members]),
            sum(r[5] for r in members if r[5] is not None),
            _weighted([(r[6], r[7]) for r in members]),
            sum(r[7] for r in members),
            sum(r[8] for r in members),
        )
    return out


def _expected_daily(rows: list[Row]) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    """Days from hours, as the rollup hierarchy defines them: hourly means weighted by hourly samples."""
    hourly = _expected(rows, timedelta(hours=1))
    as_rows: list[Row] = [(k[0], k[1], v[0], v[1], v[2], v[3], v[4], v[5], v[6]) for k, v in hourly.items()]
    return _expected(as_rows, timedelta(days=1))


def _table(conn: Connection, table: str) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    query = sql.SQL(
        "SELECT device_id, bucket, util_avg, util_max, power_avg, energy_j, temp_avg, samples, "
        "seconds_observed FROM {} ORDER BY 1, 2"
    ).format(sql.Identifier(table))
    rows = conn.execute(query).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def _assert_same(actual: dict[Any, tuple[Any, ...]], expected: dict[Any, tuple[Any, ...]]) -> None:
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        got = actual[key]
        for g, w in zip(got, want, strict=True):
            if w is None:
                assert g is None, key
            else:
                assert g is not None and math.isclose(g, w, rel_tol=1e-6), (key, got, want)


def test_refreshed_hourly_rollups_equal_a_direct_aggregate_over_the_minute_rows(conn: Connection) -> None:
    rows = _minute_rows()
    _load(conn, rows)

    report = refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))

    assert report.mode == "postgresql"
    _assert_same(_table(conn, "device_rollup_1h"), _expected(rows, timedelta(hours=1)))
    assert report.hourly_upserted == len(_expected(rows, timedelta(hours=1)))


def test_refreshed_daily_rollups_equal_a_direct_aggregate_over_the_minute_rows(conn: Connection) -> None:
    rows = _minute_rows(seed=11, gaps=False)
    _load(conn, rows)

    refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))

    daily = _table(conn, "device_rollup_1d")
    assert {k[1] for k in daily} == {datetime(2026, 3, 13, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)}
    _assert_same(daily, _expected(rows, timedelta(days=1)))


def test_daily_rollups_weight_hourly_means_by_their_samples_when_a_metric_has_gaps(conn: Connection) -> None:
    rows = _minute_rows(seed=11)
    _load(conn, rows)

    refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))

    _assert_same(_table(conn, "device_rollup_1d"), _expected_daily(rows))


def test_refreshing_the_same_window_again_changes_nothing(conn: Connection) -> None:
    _load(conn, _minute_rows())
    refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))

    again = refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))

    assert (again.hourly_upserted, again.hourly_removed, again.daily_upserted, again.daily_removed) == (
        0,
        0,
        0,
        0,
    )


def test_late_minute_rows_are_folded_in_by_the_next_refresh(conn: Connection) -> None:
    rows = _minute_rows()
    _load(conn, rows)
    refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))
    late: Row = (4, START + timedelta(minutes=45), 99.0, 100.0, 650.0, 39000.0, 80.0, 6, 60.0)
    _load(conn, [late])

    report = refresh_rollups(conn, late[1], late[1] + timedelta(minutes=1))

    assert report.hourly_upserted == 1
    _assert_same(_table(conn, "device_rollup_1h"), _expected([*rows, late], timedelta(hours=1)))
    _assert_same(_table(conn, "device_rollup_1d"), _expected_daily([*rows, late]))


def test_an_hour_whose_minute_rows_are_gone_is_removed(conn: Connection) -> None:
    rows = _minute_rows()
    _load(conn, rows)
    refresh_rollups(conn, START, START + timedelta(minutes=MINUTES))
    hour = datetime(2026, 3, 14, 0, 0, tzinfo=UTC)
    conn.execute(
        "DELETE FROM device_rollup_1m WHERE device_id = 1 AND bucket >= %s AND bucket < %s",
        (hour, hour + timedelta(hours=1)),
    )

    report = refresh_rollups(conn, hour, hour + timedelta(hours=1))

    assert report.hourly_removed == 1
    remaining = [r for r in rows if not (r[0] == 1 and hour <= r[1] < hour + timedelta(hours=1))]
    _assert_same(_table(conn, "device_rollup_1h"), _expected(remaining, timedelta(hours=1)))


def test_a_window_ending_before_it_starts_is_refused(conn: Connection) -> None:
    with pytest.raises(ValueError, match="before since"):
        refresh_rollups(conn, START, START - timedelta(hours=1))
