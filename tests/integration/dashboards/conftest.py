"""Fixtures of the dashboard tests: a database filled once per module by the real pipeline code
(`fleet_db.fill`), on plain PostgreSQL or on TimescaleDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fleet_db import FilledDb, fill

from infra.postgres import PostgresService
from kcloud.db.connect import connect
from kcloud.db.migrate import migrate
from kcloud.db.mode import probe_timescaledb
from kcloud.settings import Settings


def _db_url(server_url: str, name: str) -> str:
    head, _, _ = server_url.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="module")
def _database(base_settings: Settings, postgres_up: PostgresService) -> Iterator[str]:
    name = "dash_" + uuid.uuid4().hex[:10]
    admin = _db_url(postgres_up.url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _db_url(postgres_up.url, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def filled_plain(base_settings: Settings, _database: str) -> FilledDb:
    """The fleet on plain PostgreSQL (partitioned tables, rollup tables)."""
    settings = base_settings.model_copy(update={"database_url": _database, "timescale": "off"})
    migrate(_database, settings)
    fill(settings)
    return FilledDb(_database, timescaledb=False)


@pytest.fixture(scope="module")
def filled_timescale(base_settings: Settings, _database: str) -> FilledDb:
    """The fleet on TimescaleDB (hypertables, continuous aggregates); skipped where it cannot be installed."""
    with connect(_database, autocommit=True) as conn:
        probe = probe_timescaledb(conn)
    if not probe.installable:
        pytest.skip(f"timescaledb extension not installable on this server: {probe.reason}")
    settings = base_settings.model_copy(update={"database_url": _database, "timescale": "on"})
    migrate(_database, settings)
    fill(settings)
    return FilledDb(_database, timescaledb=True)
