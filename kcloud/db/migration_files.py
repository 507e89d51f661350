"""The migration files: discovery, validation, checksums and which ones a storage mode applies.

Migrations are SQL files shipped as package data: `kcloud/db/migrations/NNNN_name.sql` (the `core`
track, applied in both modes) and `kcloud/db/migrations/timescale/NNNN_name.sql` (the `timescale`
track, applied only on TimescaleDB and recorded under its own track name). Both tracks share one
version sequence: a timescale file takes the number of the step it belongs to, and files run in
version order, core before timescale at the same number.

A file may start with directive comments:
    -- kcloud: mode=postgresql        apply only in this storage mode (postgresql | timescaledb)
    -- kcloud: transaction=off        run outside a transaction (CREATE INDEX CONCURRENTLY and the like);
                                      such a file must hold ONE statement, since PostgreSQL runs a
                                      multi-statement string as one implicit transaction

While a file runs, the settings it may need are transaction-local parameters, read in SQL with
`current_setting('kcloud.retention_days')::integer` (also `kcloud.compress_after_days` and
`kcloud.partitions_ahead_days`): values are passed, never written into the files.

An applied file is immutable: its SHA-256 (of the text with line endings normalised) is recorded, and a
changed checksum stops `migrate`. Change the schema with a new file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Literal

from kcloud.db.errors import MigrationError
from kcloud.db.mode import ModeName

__all__ = [
    "SETTING_PARAMETERS",
    "MigrationFile",
    "Track",
    "applicable",
    "checksum",
    "load_migrations",
    "package_migrations_dir",
]

Track = Literal["core", "timescale"]
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
_DIRECTIVE_RE = re.compile(r"^--\s*kcloud:\s*(.*)$")
_MODES = ("postgresql", "timescaledb")
#: settings exposed to migration SQL as `current_setting('kcloud.<name>')`
SETTING_PARAMETERS = ("retention_days", "compress_after_days", "partitions_ahead_days")


@dataclass(frozen=True)
class MigrationFile:
    """One migration: its track, version, name, SQL text and what it asks of the runner."""

    track: Track
    version: int
    name: str
    filename: str
    sql: str
    checksum: str
    mode: ModeName | None = None
    transactional: bool = True

    @property
    def label(self) -> str:
        """How messages name it, e.g. `0002_timeseries.sql (timescale)`."""
        return f"{self.filename} ({self.track})"

    def applies_to(self, mode: ModeName) -> bool:
        """Whether this file runs in storage `mode`."""
        if self.track == "timescale" and mode != "timescaledb":
            return False
        return self.mode is None or self.mode == mode


def checksum(text: str) -> str:
    """SHA-256 (hex) of a migration's text, line endings normalised to LF."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def package_migrations_dir() -> Traversable:
    """The migrations shipped with the package (`kcloud/db/migrations/`)."""
    return resources.files("kcloud.db").joinpath("migrations")


def _directives(text: str, where: str) -> tuple[ModeName | None, bool]:
    mode: ModeName | None = None
    transactional = True
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = _DIRECTIVE_RE.match(stripped)
        if match is None:
            break  # directives are only read at the top of the file
        for item in match.group(1).split():
            key, _, value = item.partition("=")
            if key == "mode" and value in _MODES:
                mode = "timescaledb" if value == "timescaledb" else "postgresql"
            elif key == "transaction" and value in ("on", "off"):
                transactional = value == "on"
            else:
                raise MigrationError(
                    f"migration {where}: unknown directive {item!r}; known ones are "
                    "mode=postgresql|timescaledb and transaction=on|off"
                )
    return mode, transactional


def _load_track(folder: Traversable, track: Track) -> list[MigrationFile]:
    if not folder.is_dir():
        return []
    found: dict[int, MigrationFile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir() or not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        where = f"{entry.name} ({track})"
        if match is None:
            raise MigrationError(
                f"migration {where}: the name must be NNNN_lower_snake.sql, e.g. 0003_add_alert_index.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"migration {where}: version {version:04d} is also used by {found[version].filename}; "
                "give each file of a track its own number"
            )
        text = entry.read_text(encoding="utf-8")
        mode, transactional = _directives(text, where)
        if track == "timescale" and mode == "postgresql":
            raise MigrationError(f"migration {where}: a timescale file cannot ask for mode=postgresql")
        found[version] = MigrationFile(
            track, version, match.group(2), entry.name, text, checksum(text), mode, transactional
        )
    return [found[v] for v in sorted(found)]


def load_migrations(root: Traversable | Path | None = None) -> list[MigrationFile]:
    """Every migration file of both tracks under `root` (default: the package's), in run order.

    Raises `MigrationError` naming the file for a bad name, a duplicate version or an unknown directive.
    """
    base: Traversable = root if root is not None else package_migrations_dir()
    if not base.is_dir():
        raise MigrationError(f"migrations directory {base} does not exist")
    core = _load_track(base, "core")
    timescale = _load_track(base.joinpath("timescale"), "timescale")
    return sorted([*core, *timescale], key=lambda m: (m.version, m.track != "core"))


def applicable(files: list[MigrationFile], mode: ModeName) -> list[MigrationFile]:
    """The files that run in storage `mode`, in run order."""
    return [m for m in files if m.applies_to(mode)]
