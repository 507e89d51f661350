"""Plain PostgreSQL: daily partitions of device_samples, made ahead and on demand, dropped past retention."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from kcloud.db.connect import Connection
from kcloud.db.errors import PartitionRangeError
from kcloud.db.partitions import (
    drop_expired_partitions,
    ensure_partitions,
    ensure_partitions_for,
    list_partitions,
    partition_name,
)
from kcloud.settings import Settings


def _days(conn: Connection) -> list[date]:
    return [p.day for p in list_partitions(conn)]


def _insert_sample(conn: Connection, when: datetime, device_id: int = 1) -> None:
    conn.execute(
        "INSERT INTO device_samples (time, device_id, util_pct, power_w, health) VALUES (%s, %s, 50, 300, 0)",
        (when, device_id),
    )


def test_migrate_makes_the_configured_days_ahead(conn: Connection, migrated: Settings, now: datetime) -> None:
    today = now.date()
    expected = [today + timedelta(days=i) for i in range(migrated.partitions_ahead_days + 1)]
    assert _days(conn) == expected
    assert partition_name(today) in {p.name for p in list_partitions(conn)}


def test_ensure_partitions_makes_the_days_needed_and_is_idempotent(conn: Connection, now: datetime) -> None:
    start = now - timedelta(days=5)
    end = now - timedelta(days=3)

    created = ensure_partitions(conn, start, end)
    again = ensure_partitions(conn, start, end)

    assert created == [partition_name(start.date() + timedelta(days=i)) for i in range(3)]
    assert again == []
    assert set(_days(conn)) >= {start.date(), start.date() + timedelta(days=1), end.date()}


def test_ensure_partitions_is_idempotent_for_another_process_too(conn: Connection, now: datetime) -> None:
    from kcloud.db.partitions import forget_partitions

    day = now - timedelta(days=20)
    assert ensure_partitions(conn, day, day) == [partition_name(day)]
    forget_partitions()  # as if another worker process, with an empty cache, asks for the same day
    assert ensure_partitions(conn, day, day) == []


def test_a_sample_outside_any_partition_gets_one_after_ensure_partitions(conn: Connection, now: datetime) -> None:
    late = now - timedelta(days=30, hours=3)
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition"):
        _insert_sample(conn, late)

    assert ensure_partitions_for(conn, [late]) == [partition_name(late)]
    _insert_sample(conn, late)

    row = conn.execute("SELECT tableoid::regclass::text FROM device_samples WHERE time = %s", (late,)).fetchone()
    assert row == (partition_name(late),)


def test_ensure_partitions_for_makes_only_the_days_of_the_batch(conn: Connection, now: datetime) -> None:
    far, near = now - timedelta(days=60), now - timedelta(days=40)
    created = ensure_partitions_for(conn, [far, near, far + timedelta(minutes=1)])
    assert created == [partition_name(far), partition_name(near)]


def test_ensure_partitions_inside_a_callers_transaction_commits_with_it(migrated: Settings, now: datetime) -> None:
    from kcloud.db.connect import connect

    day = now - timedelta(days=9)
    with connect(migrated.effective_database_url) as conn:
        ensure_partitions(conn, day, day)
        _insert_sample(conn, day)
        conn.rollback()  # the caller changes its mind: the partition goes with its transaction
        assert ensure_partitions(conn, day, day) == [partition_name(day)]
        conn.commit()
        assert partition_name(day) in {p.name for p in list_partitions(conn)}


def test_an_implausible_span_is_refused_rather_than_making_hundreds_of_partitions(
    conn: Connection, now: datetime
) -> None:
    with pytest.raises(PartitionRangeError, match="bad timestamp"):
        ensure_partitions(conn, datetime(1970, 1, 1, tzinfo=UTC), now)


def test_naive_datetimes_are_refused(conn: Connection) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        ensure_partitions(conn, datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_drop_expired_partitions_drops_only_partitions_wholly_older_than_retention(
    conn: Connection, now: datetime
) -> None:
    ensure_partitions(conn, now - timedelta(days=14), now)
    for back in (14, 11, 10, 9):
        _insert_sample(conn, now - timedelta(days=back))
    # retention 10 days at 12:00 -> cutoff is 10 days ago at 12:00: the day 10 days ago still holds
    # samples younger than the cutoff (its afternoon), so it must stay; days 11 and more ago go.
    dropped = drop_expired_partitions(conn, retention_days=10, now=now)

    assert dropped == [partition_name(now - timedelta(days=back)) for back in range(14, 10, -1)]
    remaining = _days(conn)
    assert min(remaining) == (now - timedelta(days=10)).date()
    times = [r[0] for r in conn.execute("SELECT time FROM device_samples ORDER BY time").fetchall()]
    assert times == [now - timedelta(days=10), now - timedelta(days=9)]
    assert drop_expired_partitions(conn, retention_days=10, now=now) == []


def test_a_dropped_day_is_made_again_when_a_sample_needs_it(conn: Connection, now: datetime) -> None:
    old = now - timedelta(days=50)
    ensure_partitions(conn, old, old)
    assert drop_expired_partitions(conn, retention_days=40, now=now) == [partition_name(old)]
    assert ensure_partitions(conn, old, old) == [partition_name(old)]
