"""Daily partitions of `device_samples` on plain PostgreSQL: made ahead, and dropped past retention.

On plain PostgreSQL `device_samples` is range-partitioned by `time` into one partition per UTC day,
`device_samples_pYYYYMMDD`, with no default partition: a sample for a day that has no partition is an
error. So a writer calls `ensure_partitions` (or `ensure_partitions_for`) before each batch; it is
cheap, since the days known to exist are cached per database and only missing days touch the server.
`migrate` makes `settings.partitions_ahead_days` days ahead, and a daily job calls
`drop_expired_partitions` (the stand-in for TimescaleDB's retention policy).

On TimescaleDB `device_samples` is a hypertable that makes its own chunks: every function here is then
a no-op returning an empty list, so callers need not know the mode.

Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on `device_samples` until the
transaction that did it ends, which blocks every writer meanwhile: call `ensure_partitions` on a
connection that is not inside your write transaction (it then commits its DDL at once), as the
partitions made ahead at migrate time keep it off the hot path anyway.

The cache is per process and per database; it is only ever ahead of the server if someone else drops a
partition we created (retention drops only old days). If an insert fails with "no partition of relation
... found for row", call `forget_partitions()` and `ensure_partitions` again.

Example:
    >>> ensure_partitions(conn, batch_start, batch_end)  # doctest: +SKIP
    ['device_samples_p20260115']
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql

from kcloud.db.connect import Connection
from kcloud.db.errors import DatabaseError, PartitionRangeError

__all__ = [
    "DEFAULT_MAX_DAYS",
    "PARTITION_PREFIX",
    "Partition",
    "drop_expired_partitions",
    "ensure_partitions",
    "ensure_partitions_for",
    "forget_partitions",
    "list_partitions",
    "partition_name",
]

PARTITION_PREFIX = "device_samples_p"
DEFAULT_MAX_DAYS = 400
_PARENT = "device_samples"
_NAME_RE = re.compile(rf"^{PARTITION_PREFIX}(\d{{8}})$")
_LOCK_KEY = 0x6B63_6C6F_7564_0002  # pg_advisory_xact_lock key serialising partition DDL across workers

_DbKey = tuple[str, str, str, int]
#: made by migration 0012: creates one day's partition as the schema owner (the service role owns nothing)
_MAKER = "kcloud_make_sample_partition(date)"


@dataclass(frozen=True)
class Partition:
    """One daily partition: its name and the UTC day it holds, [start, end)."""

    name: str
    day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


@dataclass
class _Known:
    partitioned: bool
    days: set[date] = field(default_factory=set)


_lock = threading.Lock()
_known: dict[_DbKey, _Known] = {}
_conn_keys: weakref.WeakKeyDictionary[Connection, _DbKey] = weakref.WeakKeyDictionary()


def partition_name(day: date | datetime) -> str:
    """The partition holding `day` (a datetime is taken in UTC), e.g. `device_samples_p20260115`."""
    return f"{PARTITION_PREFIX}{_day(day):%Y%m%d}"


def _day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass timezone-aware (UTC) datetimes")
        return value.astimezone(UTC).date()
    return value


def _db_key(conn: Connection) -> _DbKey:
    key = _conn_keys.get(conn)
    if key is None:
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        info = conn.info
        key = (str(info.host), str(info.port), str(info.dbname), int(row[0]) if row else 0)
        _conn_keys[conn] = key
    return key


def _load(conn: Connection) -> _Known:
    row = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (_PARENT,)).fetchone()
    if row is None:
        raise DatabaseError(f"database {conn.info.dbname!r} has no {_PARENT} table yet; run `kcloud db migrate` first")
    if row[0] != "p":
        return _Known(partitioned=False)
    return _Known(partitioned=True, days={p.day for p in list_partitions(conn)})


def list_partitions(conn: Connection) -> list[Partition]:
    """The daily partitions of `device_samples`, oldest first (empty on TimescaleDB)."""
    rows = conn.execute(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (_PARENT,),
    ).fetchall()
    found = []
    for (name,) in rows:
        match = _NAME_RE.match(name)
        if match:
            found.append(Partition(name, datetime.strptime(match.group(1), "%Y%m%d").date()))
    return sorted(found, key=lambda p: p.day)


def _known_for(conn: Connection) -> _Known:
    key = _db_key(conn)
    with _lock:
        known = _known.get(key)
    if known is None:
        known = _load(conn)
        with _lock:
            _known[key] = known
    return known


def forget_partitions(conn: Connection | None = None) -> None:
    """Drop the cached partition list of `conn`'s database (of every database when None)."""
    with _lock:
        if conn is None:
            _known.clear()
        else:
            _known.pop(_db_key(conn), None)


def _ensure_days(conn: Connection, days: Iterable[date]) -> list[str]:
    known = _known_for(conn)
    if not known.partitioned:
        return []
    with _lock:
        missing = sorted(d for d in set(days) if d not in known.days)
    if not missing:
        return []
    own_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        existing = {p.day for p in list_partitions(conn)}
        # the service role owns nothing: the owner's SECURITY DEFINER function makes the partition for it
        maker = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (_MAKER,)).fetchone()
        for day in missing:
            if day in existing:
                continue
            part = Partition(partition_name(day), day)
            if maker and maker[0]:
                conn.execute("SELECT kcloud_make_sample_partition(%s)", (day,))
            else:
                conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(part.name),
                        sql.Identifier(_PARENT),
                        sql.Literal(part.start),
                        sql.Literal(part.end),
                    )
                )
            created.append(part.name)
    if own_transaction:  # committed now; inside a caller's transaction it is not ours to cache yet
        with _lock:
            known.days.update(existing)
            known.days.update(missing)
    return created


def ensure_partitions(
    conn: Connection, start: date | datetime, end: date | datetime, *, max_days: int = DEFAULT_MAX_DAYS
) -> list[str]:
    """Make sure every UTC day from `start` to `end` (both included) has its partition.

    Idempotent and cheap when the days exist (no query at all once cached). Datetimes must be
    timezone-aware. Returns the names of the partitions created (empty on TimescaleDB). Raises
    `PartitionRangeError` for a span longer than `max_days` (a bad timestamp in a batch, usually:
    use `ensure_partitions_for` with the batch's own times instead).
    """
    first, last = _day(start), _day(end)
    if last < first:
        raise ValueError(f"ensure_partitions: end {last} is before start {first}")
    span = (last - first).days + 1
    if span > max_days:
        raise PartitionRangeError(
            f"ensure_partitions: {first} .. {last} is {span} days, more than max_days={max_days}; "
            "check the batch for a bad timestamp, or pass the days themselves to ensure_partitions_for"
        )
    return _ensure_days(conn, (first + timedelta(days=i) for i in range(span)))


def ensure_partitions_for(conn: Connection, times: Iterable[date | datetime]) -> list[str]:
    """Make sure the UTC day of each of `times` has its partition (only those days, no span between).

    Returns the names of the partitions created (empty on TimescaleDB).
    """
    return _ensure_days(conn, {_day(t) for t in times})


def drop_expired_partitions(conn: Connection, retention_days: int, now: datetime | None = None) -> list[str]:
    """Drop the partitions whose every row is older than `retention_days` before `now` (default: now).

    A partition is dropped only when its whole day ends at or before `now - retention_days`, so no
    sample younger than the retention is lost. Returns the dropped names, oldest first (empty on
    TimescaleDB, where the retention policy does this).
    """
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, got {retention_days}")
    when = now or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: pass a timezone-aware (UTC) `now`")
    cutoff = when - timedelta(days=retention_days)
    if not _known_for(conn).partitioned:
        return []
    own_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    dropped: list[Partition] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for part in list_partitions(conn):
            if part.end <= cutoff:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.name)))
                dropped.append(part)
    known = _known_for(conn)
    with _lock:
        known.days.difference_update(p.day for p in dropped)
    if not own_transaction and dropped:  # the caller may still roll back: re-read next time
        forget_partitions(conn)
    return [p.name for p in dropped]
