"""Fixtures of the database-layer tests: a migrated fresh database, and a catalogue snapshot to compare
schemas with (tables, columns, types, defaults, indexes, constraints, triggers, functions, partitions,
and the rows of the bookkeeping tables)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kcloud.db.connect import Connection, connect
from kcloud.db.migrate import migrate
from kcloud.settings import Settings

#: a fixed "now" so that the partitions made ahead do not depend on the wall clock
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)

Snapshot = dict[str, list[tuple[Any, ...]]]

_SNAPSHOT_QUERIES = {
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.relispartition, coalesce(c.reloptions, '{}')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "indexes": """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' ORDER BY 1""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace AND prokind = 'f' ORDER BY 1""",
    "partitions": """
        SELECT i.inhparent::regclass::text, c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid ORDER BY 1, 2""",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "schema_migrations": "SELECT * FROM schema_migrations ORDER BY track, version",
    "kcloud_meta": "SELECT * FROM kcloud_meta ORDER BY key",
    "vendors": "SELECT * FROM vendors ORDER BY vendor_id",
    "health_states": "SELECT * FROM health_states ORDER BY code",
}


def take_snapshot(conn: Connection) -> Snapshot:
    """The catalogue and bookkeeping rows of the database behind `conn`."""
    return {name: conn.execute(query.encode()).fetchall() for name, query in _SNAPSHOT_QUERIES.items()}


@pytest.fixture
def schema_snapshot() -> Callable[[Connection], Snapshot]:
    """A function taking a catalogue snapshot of a database (compare two with ==)."""
    return take_snapshot


@pytest.fixture
def now() -> datetime:
    """The fixed "now" the `migrated` database was migrated at."""
    return NOW


@pytest.fixture
def plain_settings(test_settings: Settings) -> Settings:
    """The test settings with TimescaleDB off: plain PostgreSQL whatever the server offers."""
    return test_settings.model_copy(update={"timescale": "off"})


@pytest.fixture
def auto_settings(test_settings: Settings) -> Settings:
    """The test settings with timescale=auto, whatever the run's KCLOUD_TIMESCALE: the server decides."""
    return test_settings.model_copy(update={"timescale": "auto"})


@pytest.fixture
def migrated(plain_settings: Settings) -> Settings:
    """A fresh database migrated on plain PostgreSQL at `NOW`; returns its settings."""
    migrate(plain_settings.effective_database_url, plain_settings, now=NOW)
    return plain_settings


@pytest.fixture
def conn(migrated: Settings) -> Iterator[Connection]:
    """An autocommit connection to the migrated database."""
    with connect(migrated.effective_database_url, autocommit=True) as connection:
        yield connection
