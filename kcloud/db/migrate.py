"""The migration runner: brings a database to the schema this code expects, safely and repeatably.

`migrate(conn_or_url, settings)`:
  1. takes a session advisory lock, so concurrent runs (N stream workers starting at once) apply each
     file once; the others wait, then find nothing to do;
  2. decides the storage mode (`kcloud.db.mode.detect`; may create the timescaledb extension);
  3. checks every applied file's recorded SHA-256 against the file: an edited applied file stops here
     with `MigrationChecksumError`, before anything is changed;
  4. applies the missing files of the mode, each in its own transaction together with its row in
     `schema_migrations` (track, version, name, checksum, applied_at, duration_ms);
  5. records the mode in `kcloud_meta`, seeds `vendors` from `kcloud/catalog.yaml`, and makes
     `partitions_ahead_days` daily partitions ahead (plain PostgreSQL) or brings the retention and
     compression policies in line with the settings (TimescaleDB);
  6. grants the service role (`settings.service_role`, where that role exists and is not the migrating
     one) what the service needs and no more (`grant_service_role`): on the ledger (`deployment_events`)
     SELECT and INSERT only, on the bookkeeping tables SELECT only, and it owns nothing, so it can
     neither change ledger rows nor switch the ledger's triggers off.
Running it again changes nothing. Run it as the schema's owner (`settings.migration_database_url`).

Example:
    >>> report = migrate(settings.effective_database_url, settings)  # doctest: +SKIP
    >>> report.summary()
    'applied 0001_core.sql (core), 0002_timeseries_postgresql.sql (core); storage: postgresql ...'
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.abc import Traversable
from pathlib import Path

import psycopg
from psycopg import sql

from kcloud.catalog import load_catalog
from kcloud.db.connect import Connection, connect
from kcloud.db.errors import MigrationChecksumError, MigrationError, MigrationLockTimeoutError
from kcloud.db.migration_files import SETTING_PARAMETERS, MigrationFile, applicable, load_migrations
from kcloud.db.mode import META_MODE_KEY, META_REASON_KEY, ModeName, StorageMode, detect
from kcloud.db.partitions import ensure_partitions
from kcloud.db.timescale import sync_policies
from kcloud.settings import Settings

__all__ = [
    "MIGRATION_LOCK_KEY",
    "AppliedMigration",
    "MigrationReport",
    "MigrationState",
    "grant_service_role",
    "inspect_migrations",
    "migrate",
    "seed_vendors",
]

MIGRATION_LOCK_KEY = 0x6B63_6C6F_7564_0001  # pg_advisory_lock key of `kcloud db migrate`
#: tables the service role may only read and append to (the ledger), and those it may only read
APPEND_ONLY_TABLES = ("deployment_events",)
READ_ONLY_TABLES = ("schema_migrations", "kcloud_meta")
#: SECURITY DEFINER functions (run as the owner) the service role may call
SERVICE_FUNCTIONS = ("kcloud_make_sample_partition(date)",)

_BOOTSTRAP = """
CREATE TABLE schema_migrations (
    track       text NOT NULL,
    version     integer NOT NULL,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL,
    PRIMARY KEY (track, version)
)
"""


@dataclass(frozen=True)
class AppliedMigration:
    """A row of `schema_migrations`."""

    track: str
    version: int
    name: str
    checksum: str
    applied_at: datetime

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}.sql ({self.track})"


@dataclass(frozen=True)
class MigrationState:
    """Applied rows set against the files of a mode: what is pending, changed, or unknown to this code."""

    applied: list[AppliedMigration]
    pending: list[MigrationFile]
    changed: list[tuple[MigrationFile, AppliedMigration]]
    unknown: list[AppliedMigration]


@dataclass
class MigrationReport:
    """What one `migrate` run found and did."""

    mode: StorageMode
    applied: list[MigrationFile] = field(default_factory=list)
    already_applied: int = 0
    vendors_changed: int = 0
    partitions_created: list[str] = field(default_factory=list)
    policies_changed: list[str] = field(default_factory=list)
    unknown: list[AppliedMigration] = field(default_factory=list)
    service_role_granted: bool = False

    @property
    def changed_anything(self) -> bool:
        return bool(self.applied or self.vendors_changed or self.partitions_created or self.policies_changed)

    def summary(self) -> str:
        """One line for people: what was applied, or that the database is up to date."""
        head = "applied " + ", ".join(m.label for m in self.applied) if self.applied else "up to date"
        extra = []
        if self.partitions_created:
            extra.append(f"{len(self.partitions_created)} daily partition(s) made ahead")
        if self.vendors_changed:
            extra.append(f"{self.vendors_changed} vendor(s) seeded from the catalogue")
        if self.policies_changed:
            extra.append("policies: " + "; ".join(self.policies_changed))
        if self.unknown:
            extra.append("applied but unknown to this code: " + ", ".join(m.label for m in self.unknown))
        tail = f"; {'; '.join(extra)}" if extra else ""
        return f"{head}{tail}; storage: {self.mode.mode} {self.mode.version} ({self.mode.reason})"


def _table_exists(conn: Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _read_applied(conn: Connection) -> list[AppliedMigration]:
    if not _table_exists(conn, "schema_migrations"):
        return []
    rows = conn.execute(
        "SELECT track, version, name, checksum, applied_at FROM schema_migrations ORDER BY version, track"
    ).fetchall()
    return [AppliedMigration(str(t), int(v), str(n), str(c), a) for t, v, n, c, a in rows]


def inspect_migrations(conn: Connection, mode: ModeName, files: list[MigrationFile] | None = None) -> MigrationState:
    """Compare `schema_migrations` with the migration files of `mode`; reads only."""
    all_files = files if files is not None else load_migrations()
    by_key: dict[tuple[str, int], MigrationFile] = {(m.track, m.version): m for m in all_files}
    applied = _read_applied(conn)
    done = {(a.track, a.version) for a in applied}
    changed = [
        (by_key[(a.track, a.version)], a)
        for a in applied
        if (a.track, a.version) in by_key and by_key[(a.track, a.version)].checksum != a.checksum
    ]
    unknown = [a for a in applied if (a.track, a.version) not in by_key]
    pending = [m for m in applicable(all_files, mode) if (m.track, m.version) not in done]
    return MigrationState(applied, pending, changed, unknown)


def _lock(conn: Connection, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()
        if row and row[0]:
            return
        if time.monotonic() >= deadline:
            holder = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s LIMIT 1",
                (MIGRATION_LOCK_KEY,),
            ).fetchone()
            who = f"backend pid {holder[0]}" if holder else "another session"
            raise MigrationLockTimeoutError(
                f"migrate: {who} has held the migration lock for over {timeout_s:g}s; wait for that "
                "migration to finish (or end that session), then run `kcloud db migrate` again"
            )
        time.sleep(0.2)


def _set_parameters(conn: Connection, settings: Settings) -> None:
    for name in SETTING_PARAMETERS:
        conn.execute("SELECT set_config(%s, %s, true)", (f"kcloud.{name}", str(getattr(settings, name))))


def _apply(conn: Connection, migration: MigrationFile, settings: Settings) -> None:
    started = time.monotonic()
    try:
        if migration.transactional:
            with conn.transaction():
                _set_parameters(conn, settings)
                conn.execute(migration.sql.encode("utf-8"))
                _record(conn, migration, started)
        else:
            for name in SETTING_PARAMETERS:  # session-level: there is no transaction to scope them to
                conn.execute("SELECT set_config(%s, %s, false)", (f"kcloud.{name}", str(getattr(settings, name))))
            conn.execute(migration.sql.encode("utf-8"))
            _record(conn, migration, started)
    except psycopg.Error as exc:
        diag = exc.diag
        detail = diag.message_primary or str(exc).strip().splitlines()[0]
        context = f" (at: {diag.context.strip().splitlines()[0]})" if diag.context else ""
        undone = (
            "it was rolled back and nothing of it is applied; fix the file (an unapplied file may be edited)"
            if migration.transactional
            else "it ran outside a transaction, so statements before the failure stay applied; "
            "repair by hand, then rerun"
        )
        raise MigrationError(f"migration {migration.label} failed: {detail}{context}; {undone}") from exc


def _record(conn: Connection, migration: MigrationFile, started: float) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (track, version, name, checksum, duration_ms) VALUES (%s, %s, %s, %s, %s)",
        (
            migration.track,
            migration.version,
            migration.name,
            migration.checksum,
            round((time.monotonic() - started) * 1000),
        ),
    )


def seed_vendors(conn: Connection) -> int:
    """Insert or correct the vendors of `kcloud/catalog.yaml` (display name, domestic); returns rows changed.

    Vendors not in the catalogue (added by ingest for an unknown wire vendor) are left alone.
    """
    changed = 0
    with conn.transaction():
        for vendor in load_catalog().vendors:
            cur = conn.execute(
                "INSERT INTO vendors (vendor_id, display_name, domestic) VALUES (%s, %s, %s) "
                "ON CONFLICT (vendor_id) DO UPDATE SET display_name = EXCLUDED.display_name, "
                "domestic = EXCLUDED.domestic WHERE (vendors.display_name, vendors.domestic) "
                "IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.domestic)",
                (vendor.name, vendor.display_name, vendor.domestic),
            )
            changed += max(cur.rowcount, 0)
    return changed


def _record_mode(conn: Connection, mode: StorageMode) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO kcloud_meta (key, value) VALUES (%s, %s), (%s, %s) ON CONFLICT (key) DO NOTHING",
            (META_MODE_KEY, mode.mode, META_REASON_KEY, mode.reason),
        )


def grant_service_role(conn: Connection, role: str) -> bool:
    """Grant `role` the service's privileges on every table of `public`: all DML except on the ledger
    (SELECT, INSERT) and the bookkeeping tables (SELECT); no TRUNCATE, no ownership. Returns False, doing
    nothing, when `role` does not exist or is the migrating role itself (a one-role external server)."""
    row = conn.execute(
        "SELECT r.rolname <> current_user AND NOT r.rolsuper FROM pg_roles r WHERE r.rolname = %s", (role,)
    ).fetchone()
    if row is None or not row[0]:
        return False
    who = sql.Identifier(role)
    with conn.transaction():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(who))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who))
        for table in (*APPEND_ONLY_TABLES, *READ_ONLY_TABLES):
            if not _table_exists(conn, table):
                continue
            conn.execute(
                sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
                    sql.Identifier(table), who
                )
            )
        for table in READ_ONLY_TABLES:
            if _table_exists(conn, table):
                conn.execute(sql.SQL("REVOKE INSERT ON {} FROM {}").format(sql.Identifier(table), who))
        for function in SERVICE_FUNCTIONS:
            exists = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (function,)).fetchone()
            if exists and exists[0]:
                conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), who))
    return True


def _run(
    conn: Connection,
    settings: Settings,
    root: Traversable | Path | None,
    now: datetime,
    lock_timeout_s: float,
) -> MigrationReport:
    _lock(conn, lock_timeout_s)
    try:
        if not _table_exists(conn, "schema_migrations"):
            with conn.transaction():
                conn.execute(_BOOTSTRAP)
        files = load_migrations(root)
        mode = detect(conn, settings)
        state = inspect_migrations(conn, mode.mode, files)
        if state.changed:
            lines = "; ".join(
                f"{m.label}: recorded {a.checksum[:12]}…, file now {m.checksum[:12]}…" for m, a in state.changed
            )
            raise MigrationChecksumError(
                f"migrate: refusing to run, applied migration file(s) were edited: {lines}. Applied "
                "migrations are immutable: restore the file(s) as applied and put the change in a new "
                "migration with the next number"
            )
        if any(a.track == "timescale" for a in state.applied) and not mode.timescaledb:
            raise MigrationError(
                "migrate: this database has TimescaleDB migrations applied but the storage mode is now "
                f"postgresql ({mode.reason}); restore the timescaledb extension or use a new database"
            )
        report = MigrationReport(mode=mode, already_applied=len(state.applied), unknown=state.unknown)
        for migration in state.pending:
            _apply(conn, migration, settings)
            report.applied.append(migration)
        _record_mode(conn, mode)
        report.vendors_changed = seed_vendors(conn)
        if mode.timescaledb:
            report.policies_changed = sync_policies(conn, settings)
        else:
            today = now.astimezone(UTC).date()
            report.partitions_created = ensure_partitions(
                conn, today, today + timedelta(days=settings.partitions_ahead_days)
            )
        report.service_role_granted = grant_service_role(conn, settings.service_role)
        return report
    finally:
        # a broken connection releases the lock with its session; never mask the original error
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def migrate(
    conn_or_url: Connection | str,
    settings: Settings,
    *,
    migrations_dir: Traversable | Path | None = None,
    now: datetime | None = None,
    lock_timeout_s: float = 120.0,
) -> MigrationReport:
    """Bring the database to the current schema (see the module docstring); returns what was done.

    `conn_or_url` is a URL or a connection that is not inside a transaction (it is used in autocommit
    mode for the run and given back as it was). `migrations_dir` defaults to the packaged migrations;
    `now` (default: the current time) fixes the days of the partitions made ahead.
    Raises `MigrationChecksumError` (an applied file was edited), `MigrationError` (a file failed, and
    was rolled back), `MigrationLockTimeoutError`, `StorageModeError` or `DatabaseUnavailableError`.
    """
    when = now or datetime.now(UTC)
    if isinstance(conn_or_url, str):
        with connect(conn_or_url, autocommit=True) as conn:
            return _run(conn, settings, migrations_dir, when, lock_timeout_s)
    conn = conn_or_url
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError(
            "migrate: the connection is inside a transaction; commit or roll back first "
            "(each migration runs in a transaction of its own)"
        )
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        return _run(conn, settings, migrations_dir, when, lock_timeout_s)
    finally:
        if not conn.closed:
            conn.autocommit = was_autocommit
