"""`kcloud db status`: what the database is and holds, without changing anything.

`db_status(url, settings)` reports the storage mode and why, the applied, pending and edited
migrations, the daily partitions (plain PostgreSQL) or hypertables and policies (TimescaleDB), and
row counts of the main tables (exact, or the planner's estimates for the big time-series tables with
`exact=False`, since counting billions of samples takes minutes).

Example:
    >>> print("\\n".join(db_status(url, settings).lines()))  # doctest: +SKIP
    database: postgresql://kcloud@127.0.0.1:54329/kcloud
    storage:  postgresql 15.10 (timescaledb is not installed on this server ...)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from psycopg import sql

from kcloud.db.connect import Connection, connect, redact_url
from kcloud.db.errors import DatabaseError
from kcloud.db.migrate import AppliedMigration, inspect_migrations
from kcloud.db.migration_files import MigrationFile
from kcloud.db.mode import StorageMode, detect, recorded_mode
from kcloud.db.partitions import list_partitions
from kcloud.db.schema import MAIN_TABLES, ROLLUP_TABLES, SAMPLE_TABLE
from kcloud.db.timescale import HypertableInfo, Policy, hypertables, policies
from kcloud.settings import Settings

__all__ = ["DbStatus", "PartitionSummary", "db_status"]

_BIG_TABLES = frozenset((SAMPLE_TABLE, *ROLLUP_TABLES))


@dataclass(frozen=True)
class PartitionSummary:
    """The daily partitions of device_samples: how many, and the first and last day."""

    count: int
    first_day: date | None
    last_day: date | None


@dataclass
class DbStatus:
    """Everything `kcloud db status` shows; `lines()` renders it, `to_dict()` for JSON."""

    database: str
    mode: StorageMode | None
    mode_error: str | None
    migrated: bool
    applied: list[AppliedMigration] = field(default_factory=list)
    pending: list[MigrationFile] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unknown: list[AppliedMigration] = field(default_factory=list)
    partitions: PartitionSummary | None = None
    hypertables: list[HypertableInfo] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    row_counts: dict[str, int | None] = field(default_factory=dict)
    counts_exact: bool = True

    def lines(self) -> list[str]:
        """Human-readable lines."""
        out = [f"database:   {self.database}"]
        if self.mode is not None:
            out.append(f"storage:    {self.mode.mode} {self.mode.version} ({self.mode.reason})")
        else:
            out.append(f"storage:    unknown: {self.mode_error}")
        applied = ", ".join(a.label for a in self.applied) or "none"
        out.append(f"applied:    {applied}")
        out.append("pending:    " + (", ".join(m.label for m in self.pending) or "none (up to date)"))
        if self.changed:
            out.append("EDITED:     " + "; ".join(self.changed) + " (migrate will refuse to run)")
        if self.unknown:
            out.append("unknown:    " + ", ".join(a.label for a in self.unknown) + " (applied by newer code?)")
        if self.partitions is not None:
            span = f", {self.partitions.first_day} .. {self.partitions.last_day}" if self.partitions.count else ""
            out.append(f"partitions: {self.partitions.count} daily partition(s) of device_samples{span}")
        for ht in self.hypertables:
            comp = "compression on" if ht.compression_enabled else "compression off"
            out.append(f"hypertable: {ht.name}: {ht.chunks} chunk(s), {comp}")
        for job in self.policies:
            out.append(f"policy:     {job.proc_name} on {job.relation} every {job.schedule_interval}: {job.config}")
        if self.row_counts:
            approx = "" if self.counts_exact else " (~ = planner estimate)"
            out.append(f"rows{approx}:")
            width = max(len(t) for t in self.row_counts)
            for table, count in self.row_counts.items():
                mark = "~" if not self.counts_exact and table in _BIG_TABLES else ""
                shown = "missing" if count is None else f"{mark}{count:,}"
                out.append(f"  {table:<{width}}  {shown}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates and datetimes as ISO strings)."""
        data = asdict(self)
        data["applied"] = [{"label": a.label, "applied_at": a.applied_at.isoformat()} for a in self.applied]
        data["pending"] = [m.label for m in self.pending]
        data["unknown"] = [a.label for a in self.unknown]
        if self.partitions is not None:
            data["partitions"] = {
                "count": self.partitions.count,
                "first_day": self.partitions.first_day.isoformat() if self.partitions.first_day else None,
                "last_day": self.partitions.last_day.isoformat() if self.partitions.last_day else None,
            }
        return data


def _relkind(conn: Connection, table: str) -> str | None:
    row = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    return str(row[0]) if row else None


def _estimate(conn: Connection, table: str, timescale: bool) -> int:
    if timescale:
        row = conn.execute(
            "SELECT coalesce(format('%%I.%%I', materialization_hypertable_schema, "
            "materialization_hypertable_name), %s) FROM (SELECT 1) one LEFT JOIN "
            "timescaledb_information.continuous_aggregates ON view_name = %s",
            (table, table),
        ).fetchone()
        target = str(row[0]) if row else table
        est = conn.execute("SELECT approximate_row_count(%s::regclass)", (target,)).fetchone()
        return max(int(est[0]) if est else 0, 0)
    row = conn.execute(
        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c "
        "WHERE c.oid = to_regclass(%s) OR c.oid IN (SELECT inhrelid FROM pg_inherits "
        "WHERE inhparent = to_regclass(%s))",
        (table, table),
    ).fetchone()
    return int(row[0]) if row else 0


def _counts(conn: Connection, exact: bool, timescale: bool) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    for table in MAIN_TABLES:
        if _relkind(conn, table) is None:
            counts[table] = None
        elif not exact and table in _BIG_TABLES:
            counts[table] = _estimate(conn, table, timescale)
        else:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def db_status(url: str, settings: Settings, *, exact: bool = True) -> DbStatus:
    """Describe the database at `url` (see the module docstring); reads only, never migrates.

    Raises `DatabaseUnavailableError` when the server cannot be reached; everything else (a database
    never migrated, a mode that cannot be decided) is reported in the result.
    """
    with connect(url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        recorded = recorded_mode(conn)
        mode: StorageMode | None = None
        error: str | None = None
        try:
            mode = detect(conn, settings, install=False)
        except DatabaseError as exc:
            error = str(exc)
        status = DbStatus(redact_url(url), mode, error, migrated=recorded is not None, counts_exact=exact)
        state = inspect_migrations(conn, mode.mode if mode else "postgresql")
        status.applied, status.unknown = state.applied, state.unknown
        status.pending = state.pending if mode else []
        status.changed = [f"{m.label} (recorded {a.checksum[:12]}…, file {m.checksum[:12]}…)" for m, a in state.changed]
        timescale = mode is not None and mode.timescaledb and recorded is not None
        if timescale:
            status.hypertables = hypertables(conn)
            status.policies = policies(conn)
        elif _relkind(conn, SAMPLE_TABLE) == "p":
            parts = list_partitions(conn)
            status.partitions = PartitionSummary(
                len(parts), parts[0].day if parts else None, parts[-1].day if parts else None
            )
        status.row_counts = _counts(conn, exact, timescale)
        return status
