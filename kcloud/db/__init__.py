"""The database layer: connections, versioned migrations, storage-mode detection (TimescaleDB or plain
PostgreSQL), daily partitions, rollup refresh and status.

What a stream worker calls:
    migrate(url, settings)                         once at start-up (safe from N workers at once)
    ensure_partitions(conn, batch_start, batch_end) before each batch of samples (a cached no-op mostly)
    refresh_rollups(conn, since, until)             after writing minute rollups
    drop_expired_partitions(conn, retention_days)   daily (plain PostgreSQL's retention)
"""

from kcloud.db.connect import connect, create_pool
from kcloud.db.errors import DatabaseError
from kcloud.db.migrate import MigrationReport, migrate
from kcloud.db.mode import StorageMode, detect
from kcloud.db.partitions import drop_expired_partitions, ensure_partitions, ensure_partitions_for
from kcloud.db.rollups import RollupReport, refresh_rollups
from kcloud.db.schema import HEALTH_CODES, HEALTH_NAMES
from kcloud.db.status import DbStatus, db_status

__all__ = [
    "HEALTH_CODES",
    "HEALTH_NAMES",
    "DatabaseError",
    "DbStatus",
    "MigrationReport",
    "RollupReport",
    "StorageMode",
    "connect",
    "create_pool",
    "db_status",
    "detect",
    "drop_expired_partitions",
    "ensure_partitions",
    "ensure_partitions_for",
    "migrate",
    "refresh_rollups",
]
