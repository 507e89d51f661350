"""Storage mode: TimescaleDB where it can be had (and is wanted), plain PostgreSQL otherwise, and why.

`detect(conn, settings)` decides once per database, at migrate time, and the decision is recorded in
`kcloud_meta` (`storage_mode`, `storage_reason`): later calls honour the recorded mode, since a
database's time-series tables are either partitioned tables or hypertables and cannot silently switch.

The decision, in order:
  * `timescale=off`: plain PostgreSQL, "disabled by settings".
  * the database already has a recorded mode: keep it (an error if settings demand the other one).
  * the extension is installed in the database: TimescaleDB.
  * it is installable (listed in `pg_available_extensions` and in `shared_preload_libraries`):
    `CREATE EXTENSION timescaledb`, then TimescaleDB.
  * otherwise plain PostgreSQL with the reason as a sentence, or `StorageModeError` when
    `timescale=on`.

Example:
    >>> detect(conn, settings).reason  # doctest: +SKIP
    'timescaledb is not installed on this server (not in pg_available_extensions)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import psycopg

from kcloud.db.connect import Connection
from kcloud.db.errors import StorageModeError
from kcloud.settings import Settings

__all__ = [
    "META_MODE_KEY",
    "META_REASON_KEY",
    "ModeName",
    "StorageMode",
    "TimescaleProbe",
    "detect",
    "probe_timescaledb",
    "recorded_mode",
    "server_version",
]

ModeName = Literal["timescaledb", "postgresql"]
META_MODE_KEY = "storage_mode"
META_REASON_KEY = "storage_reason"
_HOW_TO_GET_IT = (
    "install the timescaledb package for this PostgreSQL major version, add timescaledb to "
    "shared_preload_libraries and restart the server, or set KCLOUD_TIMESCALE=auto (or off) to use plain "
    "PostgreSQL"
)


@dataclass(frozen=True)
class StorageMode:
    """The storage mode in force: `mode`, the engine `version` (TimescaleDB's, else the server's) and
    `reason`, a sentence saying why."""

    mode: ModeName
    version: str
    reason: str

    @property
    def timescaledb(self) -> bool:
        """True in TimescaleDB mode."""
        return self.mode == "timescaledb"


@dataclass(frozen=True)
class TimescaleProbe:
    """What this server and database say about TimescaleDB, without changing anything."""

    installed_version: str | None
    available_version: str | None
    preloaded: bool
    shared_preload_libraries: str

    @property
    def installable(self) -> bool:
        """Installed already, or available and preloaded (CREATE EXTENSION would work)."""
        return self.installed_version is not None or (self.available_version is not None and self.preloaded)

    @property
    def reason(self) -> str:
        """Why TimescaleDB can or cannot be used here, as a sentence."""
        if self.installed_version is not None:
            return f"timescaledb {self.installed_version} is installed in this database"
        if self.available_version is None:
            return "timescaledb is not installed on this server (not in pg_available_extensions)"
        if not self.preloaded:
            return (
                f"timescaledb {self.available_version} is available on this server but not preloaded "
                f"(shared_preload_libraries = '{self.shared_preload_libraries}'; it must include "
                f"timescaledb, and the server must be restarted)"
            )
        return f"timescaledb {self.available_version} is installable (available and preloaded)"


def server_version(conn: Connection) -> str:
    """The server's PostgreSQL version as `major.minor`, e.g. `15.10`."""
    num = conn.info.server_version
    return f"{num // 10000}.{num % 10000}"


def probe_timescaledb(conn: Connection) -> TimescaleProbe:
    """Look at pg_extension, pg_available_extensions and shared_preload_libraries; changes nothing."""
    installed = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    preload_row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    preload = str(preload_row[0]) if preload_row else ""
    libraries = {part.strip().strip('"').rsplit("/", 1)[-1] for part in preload.split(",")}
    return TimescaleProbe(
        installed_version=str(installed[0]) if installed else None,
        available_version=str(available[0]) if available else None,
        preloaded="timescaledb" in libraries,
        shared_preload_libraries=preload,
    )


def recorded_mode(conn: Connection) -> tuple[ModeName, str] | None:
    """The (mode, reason) recorded in `kcloud_meta` by an earlier migrate, or None for a new database."""
    exists = conn.execute("SELECT to_regclass('kcloud_meta') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    rows: dict[str, str] = dict(
        conn.execute(
            "SELECT key, value FROM kcloud_meta WHERE key IN (%s, %s)", (META_MODE_KEY, META_REASON_KEY)
        ).fetchall()
    )
    mode = rows.get(META_MODE_KEY)
    if mode not in ("timescaledb", "postgresql"):
        return None
    return ("timescaledb" if mode == "timescaledb" else "postgresql"), str(rows.get(META_REASON_KEY, ""))


def _plain(conn: Connection, reason: str) -> StorageMode:
    return StorageMode("postgresql", server_version(conn), reason)


def _from_record(
    conn: Connection, settings: Settings, recorded: tuple[ModeName, str], probe: TimescaleProbe
) -> StorageMode:
    mode, why = recorded
    since = f"{why} when this database was set up, so it " if why else "this database "
    if mode == "postgresql":
        if settings.timescale == "on":
            raise StorageModeError(
                "storage: this database was set up on plain PostgreSQL (kcloud_meta.storage_mode), but "
                "settings say timescale=on; its partitioned tables cannot become hypertables in place: "
                "use a new database for TimescaleDB, or set KCLOUD_TIMESCALE=auto to keep this one"
            )
        return _plain(conn, f"{since}stays on plain PostgreSQL (recorded in kcloud_meta)")
    if probe.installed_version is None:
        raise StorageModeError(
            "storage: this database was set up on TimescaleDB (kcloud_meta.storage_mode) but the "
            f"timescaledb extension is missing from it now ({probe.reason}); restore the extension "
            "(CREATE EXTENSION timescaledb) before migrating"
        )
    return StorageMode(
        "timescaledb",
        probe.installed_version,
        f"this database was set up on TimescaleDB; {probe.reason}",
    )


def detect(conn: Connection, settings: Settings, *, install: bool = True) -> StorageMode:
    """Decide the storage mode of the database behind `conn` (see the module docstring).

    With `install` (the default, what `migrate` does) an installable extension is created; with
    `install=False` nothing is changed and the reason says what migrate would do.
    Raises `StorageModeError` when `settings.timescale == "on"` and TimescaleDB cannot be had, or when
    the settings contradict the mode this database was set up in.
    """
    recorded = recorded_mode(conn)
    if settings.timescale == "off":
        if recorded is not None and recorded[0] == "timescaledb":
            raise StorageModeError(
                "storage: settings say timescale=off, but this database was set up on TimescaleDB "
                "(kcloud_meta.storage_mode); set KCLOUD_TIMESCALE=auto or on, or use a new database"
            )
        return _plain(conn, "disabled by settings (timescale=off)")
    probe = probe_timescaledb(conn)
    if recorded is not None:
        return _from_record(conn, settings, recorded, probe)
    if probe.installed_version is not None:
        return StorageMode("timescaledb", probe.installed_version, probe.reason)
    if not probe.installable:
        if settings.timescale == "on":
            raise StorageModeError(f"storage: settings say timescale=on, but {probe.reason}; {_HOW_TO_GET_IT}")
        return _plain(conn, probe.reason)
    version = probe.available_version or "?"
    if not install:
        return StorageMode("timescaledb", version, f"{probe.reason}; `kcloud db migrate` will create the extension")
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"{probe.reason}, but CREATE EXTENSION timescaledb failed: {first}"
        if settings.timescale == "on":
            raise StorageModeError(
                f"storage: settings say timescale=on, but {reason}; the migrating role needs the right "
                "to create extensions (a superuser, or the database owner on TimescaleDB's trusted builds)"
            ) from exc
        return _plain(conn, reason)
    created = probe_timescaledb(conn).installed_version or version
    return StorageMode(
        "timescaledb",
        created,
        f"timescaledb {created} was created in this database (available and preloaded)",
    )
