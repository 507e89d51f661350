"""Connections and pools: UTC sessions, and errors that name the (redacted) server and what to do."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from kcloud.db.connect import connect, create_pool
from kcloud.db.errors import DatabaseUnavailableError, MigrationLockTimeoutError
from kcloud.db.migrate import MIGRATION_LOCK_KEY, migrate
from kcloud.db.partitions import ensure_partitions, forget_partitions
from kcloud.settings import Settings

_NOWHERE = "postgresql://kcloud:secret@127.0.0.1:1/kcloud"


def test_connections_run_in_utc(fresh_database_url: str) -> None:
    with connect(fresh_database_url) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("kcloud",)


def test_a_pool_hands_out_working_connections(fresh_database_url: str) -> None:
    pool = create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        with pool.connection() as conn:
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
            assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
    finally:
        pool.close()


def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailableError) as err:
        connect(_NOWHERE, connect_timeout=2)
    message = str(err.value)
    assert message.startswith("database: cannot connect to postgresql://kcloud:***@127.0.0.1:1/kcloud")
    assert "secret" not in message and "kcloud infra up" in message


def test_a_pool_on_an_unreachable_server_fails_within_its_timeout() -> None:
    with pytest.raises(DatabaseUnavailableError, match=r"could not open 1 connection\(s\) within 1s"):
        create_pool(_NOWHERE, timeout=1)


def test_migrate_gives_up_with_a_clear_error_when_another_holds_the_lock(plain_settings: Settings) -> None:
    url = plain_settings.effective_database_url
    with connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        pid = holder.info.backend_pid
        with pytest.raises(MigrationLockTimeoutError) as err:
            migrate(url, plain_settings, lock_timeout_s=0.5)
    assert f"backend pid {pid} has held the migration lock" in str(err.value)


def test_concurrent_ensure_partitions_make_each_day_once(migrated: Settings) -> None:
    forget_partitions()
    url = migrated.effective_database_url
    start = datetime(2026, 2, 1, tzinfo=UTC)
    created: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(url, autocommit=True) as conn:
                created.extend(ensure_partitions(conn, start, start + timedelta(days=10)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(created) == len(set(created)) == 11
