"""The hourly and daily rollup refresh of a stream worker, on a connection of its own.

The ingest (`streams.sink.SampleSink`) marks the span of minute buckets it rolled up; a timer in the worker
hands that span to `RollupRefresher.refresh`, which brings `device_rollup_1h` and `device_rollup_1d` up to date
for it (`kcloud.db.rollups`; TimescaleDB's continuous aggregates there). One worker refreshes at a time (a
session advisory try-lock): a refresh covers every device of its window, whoever wrote the minutes, and a
worker that finds the lock taken leaves its span for its next tick. Its own connection means the ingest
never waits for a refresh; it is an autocommit connection, since TimescaleDB refuses
`refresh_continuous_aggregate` inside a transaction (on plain PostgreSQL the refresh opens its own).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from kcloud.db.rollups import RollupReport, refresh_rollups
from kcloud.settings import Settings

__all__ = ["REFRESH_LOCK", "RefreshBusyError", "RollupRefresher"]

#: pg_try_advisory_lock key of the hourly/daily refresh ("kcrollup")
REFRESH_LOCK = 0x6B63726F6C6C7570


class RefreshBusyError(Exception):
    """Another worker holds the rollup refresh; the window stays dirty for the next tick."""


class RollupRefresher:
    """Refreshes the hourly and daily rollups over windows of minute buckets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: psycopg.Connection[Any] | None = None
        self._caught_up = False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            # as the schema owner: TimescaleDB refreshes a continuous aggregate only for its owner
            url = self.settings.migration_database_url
            self._conn = psycopg.connect(url, connect_timeout=5, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def refresh(self, window: tuple[datetime, datetime] | None) -> RollupReport | None:
        """Bring the hourly and daily rollups up to date for the minute buckets of `window` (the first call
        also catches up from the newest hourly bucket on). None when there was nothing to do; raises
        `RefreshBusyError` when another worker is refreshing."""
        try:
            conn = self._connection()
            if not self._caught_up:
                window = self._with_backlog(conn, window)
            if window is None:
                self._caught_up = True
                return None
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (REFRESH_LOCK,)).fetchone()
            if not got or not got[0]:
                raise RefreshBusyError("another worker is refreshing the rollups")
            try:
                # no transaction around it: on TimescaleDB the continuous-aggregate refresh must run outside one
                report = refresh_rollups(conn, window[0], window[1] + timedelta(minutes=1))
            finally:
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK,))
            self._caught_up = True
            return report
        except psycopg.Error:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._conn = None
            raise

    @staticmethod
    def _with_backlog(
        conn: psycopg.Connection[Any], window: tuple[datetime, datetime] | None
    ) -> tuple[datetime, datetime] | None:
        """`window` widened to the minutes not yet in the hourly rollup (what a previous run left)."""
        with conn.transaction():
            row = conn.execute(
                "SELECT (SELECT max(bucket) FROM device_rollup_1h), (SELECT min(bucket) FROM device_rollup_1m),"
                " (SELECT max(bucket) FROM device_rollup_1m)"
            ).fetchone()
        if row is None or row[2] is None:
            return window
        since = row[0] if row[0] is not None else row[1]
        return (min(since, window[0]) if window else since, max(row[2], window[1]) if window else row[2])
