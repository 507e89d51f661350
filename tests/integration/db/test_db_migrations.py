"""Migrations: versioned, checksummed, applied once each, re-runnable, and refusing edited history."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kcloud.db.connect import Connection, connect
from kcloud.db.errors import MigrationChecksumError, MigrationError
from kcloud.db.migrate import MigrationReport, migrate
from kcloud.db.migration_files import applicable, load_migrations, package_migrations_dir
from kcloud.settings import Settings

#: the files a plain-PostgreSQL database gets, in order
PLAIN = applicable(load_migrations(), "postgresql")

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
SnapshotFn = Callable[[Connection], dict[str, list[tuple[Any, ...]]]]


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A writable copy of the packaged migrations."""
    target = tmp_path / "migrations"
    shutil.copytree(str(package_migrations_dir()), target)
    return target


def test_first_migrate_applies_every_file_in_order_and_records_its_checksum(plain_settings: Settings) -> None:
    url = plain_settings.effective_database_url
    report = migrate(url, plain_settings, now=NOW)

    expected = [m for m in load_migrations() if m.applies_to("postgresql")]
    assert [m.filename for m in report.applied] == [m.filename for m in expected]
    assert report.summary().startswith("applied 0001_core.sql (core), 0002_timeseries_postgresql.sql (core)")
    with connect(url) as conn:
        rows = conn.execute("SELECT track, version, checksum FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.track, m.version, m.checksum) for m in expected]


def test_migrating_twice_leaves_the_schema_unchanged(plain_settings: Settings, schema_snapshot: SnapshotFn) -> None:
    url = plain_settings.effective_database_url
    migrate(url, plain_settings, now=NOW)
    with connect(url, autocommit=True) as conn:
        before = schema_snapshot(conn)

    again = migrate(url, plain_settings, now=NOW)

    with connect(url, autocommit=True) as conn:
        after = schema_snapshot(conn)
    assert again.applied == []
    assert not again.changed_anything
    assert again.summary().startswith("up to date")
    assert after == before
    assert {r[0] for r in before["relations"]} >= {
        "vendors", "sites", "nodes", "devices", "device_samples", "device_rollup_1m", "device_rollup_1h",
        "device_rollup_1d", "deployment_events", "alerts", "vendor_tokens", "ingest_audit", "kcloud_meta",
    }  # fmt: skip


def test_an_edited_applied_migration_is_refused_before_anything_changes(
    plain_settings: Settings, migrations_copy: Path, schema_snapshot: SnapshotFn
) -> None:
    url = plain_settings.effective_database_url
    migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)
    (migrations_copy / "0099_more.sql").write_text("CREATE TABLE not_yet (id integer);\n")
    core = migrations_copy / "0001_core.sql"
    core.write_text(core.read_text() + "\n-- a harmless-looking edit\n")
    with connect(url, autocommit=True) as conn:
        before = schema_snapshot(conn)

    with pytest.raises(MigrationChecksumError) as err:
        migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)

    message = str(err.value)
    assert "0001_core.sql (core)" in message
    assert "immutable" in message and "new migration" in message
    with connect(url, autocommit=True) as conn:
        assert schema_snapshot(conn) == before  # 0099 was not applied either


def test_a_new_migration_file_is_applied_by_the_next_run_only(plain_settings: Settings, migrations_copy: Path) -> None:
    url = plain_settings.effective_database_url
    migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)
    (migrations_copy / "0099_site_region.sql").write_text("ALTER TABLE sites ADD COLUMN region text;\n")

    report = migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)
    again = migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)

    assert [m.filename for m in report.applied] == ["0099_site_region.sql"]
    assert again.applied == []


def test_a_failing_migration_is_rolled_back_and_not_recorded(plain_settings: Settings, migrations_copy: Path) -> None:
    url = plain_settings.effective_database_url
    migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)
    (migrations_copy / "0099_broken.sql").write_text(
        "CREATE TABLE half_done (id integer);\nSELECT no_such_function();\n"
    )

    with pytest.raises(MigrationError) as err:
        migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)

    assert "0099_broken.sql (core) failed" in str(err.value)
    assert "rolled back" in str(err.value)
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (PLAIN[-1].version,)


def test_a_migration_marked_transaction_off_runs_outside_a_transaction(
    plain_settings: Settings, migrations_copy: Path
) -> None:
    url = plain_settings.effective_database_url
    (migrations_copy / "0099_alerts_rule_idx.sql").write_text(
        "-- kcloud: transaction=off\nCREATE INDEX CONCURRENTLY alerts_rule_idx ON alerts (rule);\n"
    )

    report = migrate(url, plain_settings, migrations_dir=migrations_copy, now=NOW)

    assert [m.filename for m in report.applied][-1] == "0099_alerts_rule_idx.sql"
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('alerts_rule_idx') IS NOT NULL").fetchone() == (True,)


def test_concurrent_migrations_apply_each_file_once(plain_settings: Settings) -> None:
    url = plain_settings.effective_database_url
    reports: list[MigrationReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(migrate(url, plain_settings, now=NOW))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert errors == []
    applied = sorted(m.filename for r in reports for m in r.applied)
    assert applied == [m.filename for m in PLAIN]
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(PLAIN),)


def test_vendors_are_seeded_from_the_catalogue_with_their_domestic_flag(conn: Connection) -> None:
    rows: dict[str, bool] = dict(conn.execute("SELECT vendor_id, domestic FROM vendors").fetchall())
    assert rows["furiosa"] is True
    assert rows["rebellions"] is True
    assert rows["nvidia"] is False


def test_a_connection_inside_a_transaction_is_refused(plain_settings: Settings) -> None:
    with connect(plain_settings.effective_database_url) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(MigrationError, match="inside a transaction"):
            migrate(conn, plain_settings, now=NOW)


def test_migrate_accepts_a_connection_and_gives_it_back_as_it_was(plain_settings: Settings) -> None:
    with connect(plain_settings.effective_database_url) as conn:
        report = migrate(conn, plain_settings, now=NOW)
        assert conn.autocommit is False
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(report.applied),)
