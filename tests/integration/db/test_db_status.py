"""`kcloud db status` and `kcloud db migrate`: what the database is, holds and lacks, and why."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kcloud.db.cli import app
from kcloud.db.connect import Connection
from kcloud.db.migration_files import applicable, load_migrations
from kcloud.db.status import db_status
from kcloud.settings import Settings

#: the files a plain-PostgreSQL database gets, in order
PLAIN = applicable(load_migrations(), "postgresql")


def test_status_reports_postgresql_mode_with_the_reason(migrated: Settings) -> None:
    status = db_status(migrated.effective_database_url, migrated)

    assert status.mode is not None
    assert status.mode.mode == "postgresql"
    assert "disabled by settings (timescale=off)" in status.mode.reason
    assert status.migrated
    assert [a.label for a in status.applied] == [m.label for m in PLAIN]
    assert status.pending == []
    assert status.partitions is not None and status.partitions.count == migrated.partitions_ahead_days + 1
    assert status.row_counts["vendors"] == 9
    assert status.row_counts["device_samples"] == 0
    text = "\n".join(status.lines())
    assert "storage:    postgresql" in text and "disabled by settings" in text
    assert "pending:    none (up to date)" in text


def test_status_on_this_server_says_why_timescaledb_is_or_is_not_used(auto_settings: Settings) -> None:
    status = db_status(auto_settings.effective_database_url, auto_settings)
    assert status.mode is not None
    assert status.mode.reason.startswith("timescaledb ")
    assert not status.migrated
    pending = [m.label for m in status.pending]
    if status.mode.mode == "postgresql":
        assert pending == [m.label for m in PLAIN]
    else:
        assert "0002_timeseries.sql (timescale)" in pending


def test_status_counts_rows_of_the_main_tables(migrated: Settings, conn: Connection) -> None:
    conn.execute("INSERT INTO sites (site_id, name) VALUES ('kr-daejeon-1', 'Daejeon 1')")
    conn.execute(
        "INSERT INTO device_samples (time, device_id, util_pct) VALUES ('2026-03-14 12:00+00', 1, 10), "
        "('2026-03-14 12:00:10+00', 1, 20)"
    )
    status = db_status(migrated.effective_database_url, migrated)
    assert status.row_counts["sites"] == 1
    assert status.row_counts["device_samples"] == 2
    assert set(status.row_counts) >= {
        "devices",
        "deployment_events",
        "alerts",
        "vendor_tokens",
        "ingest_audit",
    }


def test_status_changes_nothing_even_where_timescaledb_could_be_created(auto_settings: Settings) -> None:
    db_status(auto_settings.effective_database_url, auto_settings)
    again = db_status(auto_settings.effective_database_url, auto_settings)
    assert again.applied == []
    assert all(count is None for count in again.row_counts.values())


def test_cli_migrate_prints_what_it_applied_then_up_to_date(plain_settings: Settings) -> None:
    runner = CliRunner()

    first = runner.invoke(app, ["migrate"], obj=plain_settings)
    second = runner.invoke(app, ["migrate"], obj={"settings": plain_settings})

    assert first.exit_code == 0, first.output
    assert "applied 0001_core.sql (core)\napplied 0002_timeseries_postgresql.sql (core)\n" in first.output
    assert "storage: postgresql" in first.output
    assert second.exit_code == 0, second.output
    assert second.output.startswith("up to date\n")


def test_cli_status_prints_the_mode_and_json_on_request(migrated: Settings) -> None:
    runner = CliRunner()

    text = runner.invoke(app, ["status"], obj=migrated)
    as_json = runner.invoke(app, ["status", "--json", "--estimate"], obj=migrated)

    assert text.exit_code == 0, text.output
    assert "storage:    postgresql" in text.output
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["mode"]["mode"] == "postgresql"
    assert data["pending"] == []
    assert data["partitions"]["count"] == migrated.partitions_ahead_days + 1


def test_cli_reports_an_unreachable_database_in_one_line(plain_settings: Settings) -> None:
    nowhere = plain_settings.model_copy(update={"database_url": "postgresql://kcloud:pw@127.0.0.1:1/kcloud"})
    result = CliRunner().invoke(app, ["migrate"], obj=nowhere)
    assert result.exit_code == 1
    assert "database: cannot connect to postgresql://kcloud:***@127.0.0.1:1/kcloud" in result.output


def test_status_shows_an_edited_migration(plain_settings: Settings) -> None:
    from kcloud.db.connect import connect
    from kcloud.db.migrate import migrate

    migrate(plain_settings.effective_database_url, plain_settings)
    with connect(plain_settings.effective_database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'abc' WHERE version = 1")
    status = db_status(plain_settings.effective_database_url, plain_settings)
    assert [c.split(" (recorded")[0] for c in status.changed] == ["0001_core.sql (core)"]
    assert any(line.startswith("EDITED:") for line in status.lines())
