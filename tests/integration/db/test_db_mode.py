"""Storage mode: TimescaleDB when it can be had and is wanted, plain PostgreSQL otherwise, always with why."""

from __future__ import annotations

import pytest

from kcloud.db.connect import Connection, connect
from kcloud.db.errors import StorageModeError
from kcloud.db.migrate import migrate
from kcloud.db.mode import detect, probe_timescaledb
from kcloud.settings import Settings


def _installable(settings: Settings) -> bool:
    with connect(settings.effective_database_url, autocommit=True) as conn:
        return probe_timescaledb(conn).installable


def test_timescale_off_means_plain_postgresql_disabled_by_settings(plain_settings: Settings) -> None:
    with connect(plain_settings.effective_database_url, autocommit=True) as conn:
        mode = detect(conn, plain_settings)
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (0,)
    assert mode.mode == "postgresql"
    assert mode.reason == "disabled by settings (timescale=off)"
    assert mode.version.startswith("15.") or mode.version[0].isdigit()


def test_auto_without_timescaledb_falls_back_to_plain_postgresql_and_says_why(
    auto_settings: Settings,
) -> None:
    with connect(auto_settings.effective_database_url, autocommit=True) as conn:
        probe = probe_timescaledb(conn)
        if probe.installable:
            pytest.skip("timescaledb is installable on this server; the fallback cannot be seen here")
        mode = detect(conn, auto_settings)
    assert mode.mode == "postgresql"
    assert mode.reason == probe.reason
    assert mode.reason.startswith("timescaledb ")
    if probe.available_version is None:
        assert mode.reason == "timescaledb is not installed on this server (not in pg_available_extensions)"


def test_timescale_on_without_timescaledb_is_a_clear_error(test_settings: Settings) -> None:
    if _installable(test_settings):
        pytest.skip("timescaledb is installable on this server; timescale=on succeeds here")
    required = test_settings.model_copy(update={"timescale": "on"})
    with pytest.raises(StorageModeError) as err:
        migrate(required.effective_database_url, required)
    message = str(err.value)
    assert message.startswith("storage: settings say timescale=on, but timescaledb")
    assert "shared_preload_libraries" in message and "KCLOUD_TIMESCALE" in message


def test_a_database_set_up_on_plain_postgresql_stays_so(migrated: Settings, conn: Connection) -> None:
    auto = migrated.model_copy(update={"timescale": "auto"})
    mode = detect(conn, auto)
    assert mode.mode == "postgresql"
    assert mode.reason.startswith("disabled by settings (timescale=off) when this database was set up")

    required = migrated.model_copy(update={"timescale": "on"})
    with pytest.raises(StorageModeError, match="set up on plain PostgreSQL"):
        detect(conn, required)


def test_the_mode_in_force_is_recorded_in_kcloud_meta(conn: Connection) -> None:
    meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM kcloud_meta").fetchall())
    assert meta["storage_mode"] == "postgresql"
    assert meta["storage_reason"] == "disabled by settings (timescale=off)"
