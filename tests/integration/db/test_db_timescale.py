"""TimescaleDB mode: hypertables, hierarchical continuous aggregates, compression and retention policies.

Every test here needs a server where the timescaledb extension is installable (available and in
shared_preload_libraries); elsewhere they are skipped with the reason the server gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kcloud.db.connect import Connection, connect
from kcloud.db.migrate import migrate
from kcloud.db.mode import probe_timescaledb
from kcloud.db.partitions import drop_expired_partitions, ensure_partitions
from kcloud.db.rollups import refresh_rollups
from kcloud.db.schema import ROLLUP_COLUMNS
from kcloud.db.status import db_status
from kcloud.db.timescale import compression_segmentby, hypertables, policies
from kcloud.settings import Settings

pytestmark = pytest.mark.timescale


@pytest.fixture
def ts_settings(test_settings: Settings) -> Settings:
    """A fresh database migrated in TimescaleDB mode, with non-default retention and compression."""
    url = test_settings.effective_database_url
    with connect(url, autocommit=True) as conn:
        probe = probe_timescaledb(conn)
    if not probe.installable:
        pytest.skip(f"timescaledb extension not installable on this server: {probe.reason}")
    settings = test_settings.model_copy(update={"timescale": "on", "retention_days": 30, "compress_after_days": 3})
    migrate(url, settings)
    return settings


@pytest.fixture
def ts_conn(ts_settings: Settings) -> Iterator[Connection]:
    with connect(ts_settings.effective_database_url, autocommit=True) as conn:
        yield conn


def _job(conn: Connection, proc: str, relation: str) -> dict[str, Any]:
    found = [p for p in policies(conn) if p.proc_name == proc and p.relation == relation]
    assert len(found) == 1, (proc, relation, policies(conn))
    return found[0].config


def _is_interval(conn: Connection, value: Any, days: int) -> bool:
    row = conn.execute("SELECT %s::interval = make_interval(days => %s)", (str(value), days)).fetchone()
    return bool(row and row[0])


def test_samples_and_minute_rollups_are_hypertables_with_daily_chunks(ts_conn: Connection) -> None:
    assert {h.name for h in hypertables(ts_conn)} >= {"device_samples", "device_rollup_1m"}
    dims: dict[str, timedelta] = dict(
        ts_conn.execute(
            "SELECT hypertable_name::text, time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name IN ('device_samples', 'device_rollup_1m')"
        ).fetchall()
    )
    assert dims == {"device_samples": timedelta(days=1), "device_rollup_1m": timedelta(days=1)}
    relkind = ts_conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'device_samples'::regclass")
    assert relkind.fetchone() == ("r",)  # not a partitioned table: the plain partitioning is not used


def test_hourly_and_daily_rollups_are_hierarchical_continuous_aggregates(ts_conn: Connection) -> None:
    rows = ts_conn.execute(
        "SELECT view_name::text, hypertable_name::text, view_definition "
        "FROM timescaledb_information.continuous_aggregates"
    ).fetchall()
    caggs = {name: (source, definition) for name, source, definition in rows}
    assert set(caggs) >= {"device_rollup_1h", "device_rollup_1d"}
    assert caggs["device_rollup_1h"][0] == "device_rollup_1m"
    assert "device_rollup_1h" in caggs["device_rollup_1d"][1]
    for view in ("device_rollup_1h", "device_rollup_1d"):
        columns = ts_conn.execute(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (view,),
        ).fetchall()
        assert tuple(c[0] for c in columns) == ROLLUP_COLUMNS
    for view in ("device_rollup_1h", "device_rollup_1d"):
        assert _job(ts_conn, "policy_refresh_continuous_aggregate", view)


def test_samples_are_compressed_by_device_after_the_configured_days(ts_conn: Connection) -> None:
    assert compression_segmentby(ts_conn, "device_samples") == ["device_id"]
    assert {h.name: h.compression_enabled for h in hypertables(ts_conn)}["device_samples"] is True
    config = _job(ts_conn, "policy_compression", "device_samples")
    assert _is_interval(ts_conn, config["compress_after"], 3)


def test_samples_are_dropped_after_the_configured_retention(ts_conn: Connection) -> None:
    config = _job(ts_conn, "policy_retention", "device_samples")
    assert _is_interval(ts_conn, config["drop_after"], 30)


def test_changed_settings_replace_the_policies_on_the_next_migrate(ts_settings: Settings, ts_conn: Connection) -> None:
    longer = ts_settings.model_copy(update={"retention_days": 45})
    report = migrate(ts_settings.effective_database_url, longer)
    again = migrate(ts_settings.effective_database_url, longer)

    assert report.applied == []
    assert report.policies_changed == ["device_samples drop_after set to 45 days (was 30 days)"]
    assert again.policies_changed == []
    assert _is_interval(ts_conn, _job(ts_conn, "policy_retention", "device_samples")["drop_after"], 45)


def test_migrating_twice_changes_nothing_on_timescaledb(ts_settings: Settings) -> None:
    again = migrate(ts_settings.effective_database_url, ts_settings)
    assert again.applied == []
    assert not again.changed_anything
    assert again.mode.mode == "timescaledb"


def test_refresh_rollups_fills_the_continuous_aggregates(ts_conn: Connection) -> None:
    start = datetime(2026, 3, 13, 23, 0, tzinfo=UTC)
    with ts_conn.cursor().copy(
        "COPY device_rollup_1m (device_id, bucket, util_avg, util_max, power_avg, energy_j, temp_avg, "
        "samples, seconds_observed) FROM STDIN"
    ) as copy:
        for i in range(120):
            copy.write_row((1, start + timedelta(minutes=i), float(i % 60), 100.0, 300.0, 1000.0, 50.0, 6, 60.0))

    report = refresh_rollups(ts_conn, start, start + timedelta(hours=2))

    assert report.mode == "timescaledb"
    hourly = ts_conn.execute(
        "SELECT bucket, util_avg, samples, energy_j FROM device_rollup_1h WHERE device_id = 1 ORDER BY bucket"
    ).fetchall()
    assert [(b, round(u, 3), n, e) for b, u, n, e in hourly] == [
        (start, 29.5, 360, 60000.0),
        (start + timedelta(hours=1), 29.5, 360, 60000.0),
    ]
    daily = ts_conn.execute("SELECT bucket, samples FROM device_rollup_1d WHERE device_id = 1 ORDER BY 1").fetchall()
    assert daily == [(datetime(2026, 3, 13, tzinfo=UTC), 360), (datetime(2026, 3, 14, tzinfo=UTC), 360)]


def test_partition_helpers_are_no_ops_on_timescaledb(ts_conn: Connection) -> None:
    now = datetime.now(UTC)
    assert ensure_partitions(ts_conn, now - timedelta(days=3), now) == []
    assert drop_expired_partitions(ts_conn, 1, now) == []


def test_status_reports_timescaledb_with_its_hypertables_and_policies(ts_settings: Settings) -> None:
    status = db_status(ts_settings.effective_database_url, ts_settings)
    assert status.mode is not None and status.mode.mode == "timescaledb"
    assert "timescaledb" in status.mode.reason
    assert status.partitions is None
    assert {h.name for h in status.hypertables} >= {"device_samples", "device_rollup_1m"}
    assert {p.proc_name for p in status.policies} >= {"policy_retention", "policy_compression"}
    assert "0002_timeseries.sql (timescale)" in [a.label for a in status.applied]
