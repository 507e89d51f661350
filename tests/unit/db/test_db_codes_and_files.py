"""The database layer's constants and migration files agree with the catalogue and with each other."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kcloud.catalog import load_catalog
from kcloud.db.errors import MigrationError
from kcloud.db.migration_files import checksum, load_migrations, package_migrations_dir
from kcloud.db.partitions import partition_name
from kcloud.db.rollups import bucket_ceil, bucket_floor
from kcloud.db.schema import (
    ACTIVITY_HEALTH_COLUMNS,
    DEVICE_SAMPLE_COLUMNS,
    HEALTH_CODES,
    HEALTH_NAMES,
    ROLLUP_COLUMNS,
    health_code,
    health_name,
)

MIGRATIONS = Path(str(package_migrations_dir()))


def _create_table_columns(sql: str, table: str) -> list[str]:
    """Column definitions of `CREATE TABLE table (...)` in `sql`, whitespace-normalised, no constraints."""
    match = re.search(rf"CREATE TABLE {table} \((.*?)\n\)", sql, re.S)
    assert match, f"no CREATE TABLE {table} found"
    lines = [" ".join(line.split()).rstrip(",") for line in match.group(1).strip().splitlines()]
    return [line for line in lines if line and not line.startswith(("PRIMARY KEY", "--"))]


def test_health_codes_cover_exactly_the_catalogue_states_in_order() -> None:
    states = load_catalog().metric("health").values
    assert tuple(HEALTH_CODES) == states
    assert list(HEALTH_CODES.values()) == list(range(len(states)))
    assert {HEALTH_NAMES[code]: code for code in HEALTH_NAMES} == HEALTH_CODES


def test_the_health_states_table_is_seeded_with_the_python_mapping() -> None:
    core = (MIGRATIONS / "0001_core.sql").read_text()
    seeded = dict((name, int(code)) for code, name in re.findall(r"\((\d+), '(\w+)'\)", core))
    assert seeded == HEALTH_CODES


def test_health_code_round_trips_and_keeps_null_apart_from_unknown() -> None:
    assert health_code(None) is None
    assert health_code("unknown") == 3
    assert health_name(health_code("degraded")) == "degraded"
    with pytest.raises(KeyError, match="not one of ok, degraded, failed, unknown"):
        health_code("broken")


@pytest.mark.parametrize("table", ["device_samples", "device_rollup_1m"])
def test_both_storage_modes_create_the_same_columns(table: str) -> None:
    plain = _create_table_columns((MIGRATIONS / "0002_timeseries_postgresql.sql").read_text(), table)
    timescale = _create_table_columns((MIGRATIONS / "timescale" / "0002_timeseries.sql").read_text(), table)
    assert plain == timescale
    if table == "device_samples":
        expected = DEVICE_SAMPLE_COLUMNS[: len(DEVICE_SAMPLE_COLUMNS) - len(ACTIVITY_HEALTH_COLUMNS)]
    else:
        expected = ROLLUP_COLUMNS
    assert tuple(line.split()[0] for line in plain) == expected


def test_the_activity_and_health_columns_are_added_nullable_in_table_order_for_both_modes() -> None:
    sql = (MIGRATIONS / "0013_activity_health_counters.sql").read_text()
    assert "kcloud: mode=" not in sql  # a core file: both storage modes apply it
    added = re.findall(r"^ALTER TABLE device_samples ADD COLUMN (\w+) (\w+);$", sql, flags=re.MULTILINE)
    assert tuple(name for name, _ in added) == ACTIVITY_HEALTH_COLUMNS
    assert "NOT NULL" not in sql and "DEFAULT" not in sql
    assert {name for name, kind in added if kind == "boolean"} == {
        "throttle_power",
        "throttle_thermal",
        "mem_repair_pending",
        "mem_repair_failed",
    }


def test_timescale_migrations_take_settings_as_parameters_not_literals() -> None:
    sql = (MIGRATIONS / "timescale" / "0002_timeseries.sql").read_text()
    assert "current_setting('kcloud.retention_days')" in sql
    assert "current_setting('kcloud.compress_after_days')" in sql
    assert not re.search(r"(drop_after|compress_after)\s*=>\s*INTERVAL", sql)


def test_packaged_migrations_load_in_version_order_with_their_modes() -> None:
    files = load_migrations()
    labels = [m.label for m in files]
    assert labels[:3] == [
        "0001_core.sql (core)",
        "0002_timeseries_postgresql.sql (core)",
        "0002_timeseries.sql (timescale)",
    ]
    by_label = {m.label: m for m in files}
    assert by_label["0002_timeseries_postgresql.sql (core)"].mode == "postgresql"
    assert not by_label["0002_timeseries.sql (timescale)"].applies_to("postgresql")
    assert by_label["0002_timeseries.sql (timescale)"].applies_to("timescaledb")
    assert not by_label["0002_timeseries_postgresql.sql (core)"].applies_to("timescaledb")


def test_checksums_ignore_line_endings_but_nothing_else() -> None:
    assert checksum("SELECT 1;\r\nSELECT 2;\r\n") == checksum("SELECT 1;\nSELECT 2;\n")
    assert checksum("SELECT 1;\n") != checksum("SELECT 1; \n")


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("3_short.sql", "SELECT 1;", "must be NNNN_lower_snake.sql"),
        ("0003_Upper.sql", "SELECT 1;", "must be NNNN_lower_snake.sql"),
        ("0003_x.sql", "-- kcloud: mode=oracle\nSELECT 1;", "unknown directive 'mode=oracle'"),
        ("0001_again.sql", "SELECT 1;", "0001_core.sql (core): version 0001 is also used by 0001_again.sql"),
    ],
)
def test_malformed_migration_files_are_refused_naming_the_file(
    tmp_path: Path, filename: str, text: str, message: str
) -> None:
    (tmp_path / "0001_core.sql").write_text("SELECT 1;\n")
    (tmp_path / filename).write_text(text)
    with pytest.raises(MigrationError, match=re.escape(message)) as err:
        load_migrations(tmp_path)
    assert filename in str(err.value)


def test_directives_are_read_from_the_top_of_the_file_only(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("-- kcloud: transaction=off\nSELECT 1;\n-- kcloud: mode=timescaledb\n")
    (migration,) = load_migrations(tmp_path)
    assert migration.transactional is False
    assert migration.mode is None


def test_partition_names_use_the_utc_day() -> None:
    assert partition_name(date(2026, 1, 15)) == "device_samples_p20260115"
    assert partition_name(datetime(2026, 1, 15, 23, 59, tzinfo=UTC)) == "device_samples_p20260115"
    assert partition_name(datetime.fromisoformat("2026-01-16T08:00:00+09:00")) == "device_samples_p20260115"
    with pytest.raises(ValueError, match="naive datetime"):
        partition_name(datetime(2026, 1, 15))


def test_buckets_are_utc_aligned() -> None:
    when = datetime.fromisoformat("2026-03-14T09:37:12+09:00")
    assert bucket_floor(when, timedelta(hours=1)) == datetime(2026, 3, 14, 0, 0, tzinfo=UTC)
    assert bucket_floor(when, timedelta(days=1)) == datetime(2026, 3, 14, tzinfo=UTC)
    assert bucket_ceil(when, timedelta(hours=1)) == datetime(2026, 3, 14, 1, 0, tzinfo=UTC)
    exact = datetime(2026, 3, 14, 1, 0, tzinfo=UTC)
    assert bucket_ceil(exact, timedelta(hours=1)) == exact
