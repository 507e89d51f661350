"""The database side of the end-to-end benchmark: how many samples are stored, how many bytes each takes, and
the ceiling the pipeline is judged against.

- `inserted_rows`: rows inserted into `device_samples` so far, from PostgreSQL's own cumulative statistics
  (`n_tup_ins` of its partitions or chunks; the server publishes them at least once a second while busy), so
  the stored rate is counted in the database without a `count(*)` over millions of rows while the pipeline runs;
- `bytes_per_sample`: table + indexes (`pg_total_relation_size` over the partitions, or `hypertable_size` on
  TimescaleDB) divided by the rows;
- `copy_ceiling`: the rows the pipeline stored, dumped with binary COPY (untimed), then loaded by one binary COPY
  stream into `device_samples` of a fresh database of the same schema (timed): the fastest any ingest could
  store them on this server;
- `compressed_bytes_per_sample`: on TimescaleDB, the same after compressing every chunk.

Example:
    >>> ceiling = copy_ceiling(pipeline_url, fresh_url, settings, workdir)
    >>> ceiling.rows_per_s
    171234.5
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from kcloud.settings import Settings

__all__ = [
    "CeilingResult",
    "bytes_per_sample",
    "compressed_bytes_per_sample",
    "copy_ceiling",
    "count_rows",
    "create_database",
    "drop_database",
    "inserted_rows",
    "is_timescale",
    "sibling_url",
]

_COLUMNS = (
    "time, device_id, util_pct, mem_used_bytes, mem_total_bytes, energy_j, ecc_uncorrected, power_w, "
    "power_limit_w, temp_c, clock_mhz, throughput, health, workload_id"
)
_CHUNK = 1 << 20
_CHILDREN = "SELECT inhrelid FROM pg_inherits WHERE inhparent = 'device_samples'::regclass"


def sibling_url(url: str, database: str) -> str:
    """`url` with its database name replaced by `database` (query string kept)."""
    head, _, tail = url.rpartition("/")
    query = "?" + tail.split("?", 1)[1] if "?" in tail else ""
    return f"{head}/{database}{query}"


def database_name(url: str) -> str:
    return url.rpartition("/")[2].split("?", 1)[0]


def create_database(url: str) -> None:
    """Create the (empty) database `url` names, through the server's `postgres` database."""
    with psycopg.connect(sibling_url(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{database_name(url)}"')


def drop_database(url: str) -> None:
    """Drop the database `url` names, if it exists (open sessions are ended)."""
    with psycopg.connect(sibling_url(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def is_timescale(conn: psycopg.Connection[Any]) -> bool:
    """Whether `device_samples` is a TimescaleDB hypertable in this database."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if row is None:
        return False
    found = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'device_samples'"
    ).fetchone()
    return found is not None


def inserted_rows(conn: psycopg.Connection[Any]) -> int:
    """Rows inserted into `device_samples` so far, from the statistics of its partitions (or chunks).
    `conn` must be in autocommit mode, so that each call reads fresh statistics."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        f"SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relid IN ({_CHILDREN})"
    ).fetchone()
    return int(row[0]) if row is not None else 0


def count_rows(url: str) -> int:
    """The exact number of rows in `device_samples`."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM device_samples").fetchone()
    return int(row[0]) if row is not None else 0


def _table_bytes(conn: psycopg.Connection[Any]) -> int:
    if is_timescale(conn):
        row = conn.execute("SELECT hypertable_size('device_samples')").fetchone()
    else:
        row = conn.execute(f"SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM ({_CHILDREN}) c").fetchone()
    return int(row[0] or 0) if row is not None else 0


def bytes_per_sample(url: str, rows: int) -> float | None:
    """Table + index bytes of `device_samples` per row (None for an empty table)."""
    if rows <= 0:
        return None
    with psycopg.connect(url, autocommit=True) as conn:
        return _table_bytes(conn) / rows


def compressed_bytes_per_sample(url: str, rows: int) -> tuple[float | None, str]:
    """On TimescaleDB: compress every chunk of `device_samples` and return (bytes per row, what was done);
    elsewhere (None, why it was skipped)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not is_timescale(conn):
            return None, "skipped: TimescaleDB is not installed here (plain PostgreSQL); nothing to compress"
        row = conn.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('device_samples') c"
        ).fetchone()
        chunks = int(row[0]) if row is not None else 0
        return (_table_bytes(conn) / rows if rows > 0 else None), f"{chunks} chunk(s) compressed"


@dataclass(frozen=True)
class CeilingResult:
    """One binary COPY stream of the pipeline's rows into a fresh `device_samples`."""

    rows: int
    bytes: int
    wall_s: float
    rows_per_s: float
    db_cpu_s: float | None
    bytes_per_sample: float | None


def copy_ceiling(
    source_url: str,
    target_url: str,
    settings: Settings,
    workdir: Path,
    db_cpu: Callable[[], float | None] = lambda: None,
) -> CeilingResult:
    """Dump `device_samples` of `source_url` (untimed), migrate the empty database `target_url` to the same
    schema, then time one binary COPY of the dump into its `device_samples`. `db_cpu` reads the database
    server's CPU seconds (its difference over the load is reported)."""
    from kcloud.db.migrate import migrate

    migrate(target_url, settings.model_copy(update={"database_url": target_url}))
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="ceiling-", suffix=".copy", dir=workdir)
    dump = Path(name)
    try:
        query = f"COPY (SELECT {_COLUMNS} FROM device_samples) TO STDOUT (FORMAT BINARY)"
        with os.fdopen(fd, "wb") as out, psycopg.connect(source_url) as src, src.cursor() as cur, cur.copy(query) as cp:
            for block in cp:
                out.write(block)
        size = dump.stat().st_size
        with psycopg.connect(target_url) as dst:
            # make sure the partitions of every day in the dump exist, as the ingest does
            from kcloud.db.partitions import ensure_partitions_for

            with psycopg.connect(source_url, autocommit=True) as src:
                days = [r[0] for r in src.execute("SELECT DISTINCT date_trunc('day', time) FROM device_samples")]
            ensure_partitions_for(dst, days)
            dst.commit()
            cpu0, t0 = db_cpu(), time.perf_counter()
            with dst.cursor() as cur, dump.open("rb") as data:
                with cur.copy(f"COPY device_samples ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    while block := data.read(_CHUNK):
                        copy.write(block)
                rows = cur.rowcount
            dst.commit()
            wall, cpu1 = time.perf_counter() - t0, db_cpu()
    finally:
        with contextlib.suppress(OSError):
            dump.unlink()
    return CeilingResult(
        rows=rows,
        bytes=size,
        wall_s=wall,
        rows_per_s=rows / wall if wall > 0 else 0.0,
        db_cpu_s=(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        bytes_per_sample=bytes_per_sample(target_url, rows),
    )
