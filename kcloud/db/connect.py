"""Connections to the platform's PostgreSQL: one place that opens them, with errors an operator can act on.

Every stage (stream workers, reports, the CLI) gets its connections here: `connect(url)` for one, and
`create_pool(url)` for a `psycopg_pool.ConnectionPool` shared by a worker's threads. Rows come back as
plain tuples; the session time zone is UTC, so `timestamptz` values read back as UTC datetimes.

Example:
    >>> with connect("postgresql://kcloud@127.0.0.1:54329/kcloud") as conn:  # doctest: +SKIP
    ...     conn.execute("SELECT 1").fetchone()
    (1,)
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from kcloud.db.errors import DatabaseUnavailableError

__all__ = ["APPLICATION_NAME", "Connection", "Pool", "connect", "create_pool", "redact_url"]

APPLICATION_NAME = "kcloud"
Connection = psycopg.Connection[tuple[Any, ...]]
Pool = ConnectionPool[Connection]

_SESSION_OPTIONS = "-c TimeZone=UTC"


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, fit for messages and logs.

    >>> redact_url("postgresql://kcloud:s3cret@db:5432/kcloud")
    'postgresql://kcloud:***@db:5432/kcloud'
    """
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _kwargs(url: str, application_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"application_name": application_name}
    if "options=" not in url:  # an explicit `options` in the URL wins
        kwargs["options"] = _SESSION_OPTIONS
    return kwargs


def connect(
    url: str,
    *,
    autocommit: bool = False,
    connect_timeout: float = 10.0,
    application_name: str = APPLICATION_NAME,
) -> Connection:
    """Open one connection to `url` (session time zone UTC).

    Raises `DatabaseUnavailableError` naming the (password-redacted) URL when the server cannot be
    reached or refuses us.
    """
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=max(1, round(connect_timeout)),
            **_kwargs(url, application_name),
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "the local cluster's roles and passwords are made by `kcloud infra up` and kept in <state_dir>/pgpass; "
            "an external server's belong in KCLOUD_DATABASE_URL (and KCLOUD_OWNER_DATABASE_URL)"
            if "password" in first
            else "is the server running (`kcloud infra up` starts the local one) and is KCLOUD_DATABASE_URL right?"
        )
        raise DatabaseUnavailableError(f"database: cannot connect to {redact_url(url)}: {first}; {hint}") from exc


def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    timeout: float = 30.0,
    open_now: bool = True,
    application_name: str = APPLICATION_NAME,
) -> Pool:
    """A connection pool on `url`; use `with pool.connection() as conn:` (commits on success).

    With `open_now` (the default) the pool is opened and waits until `min_size` connections are up,
    raising `DatabaseUnavailableError` if that takes longer than `timeout` seconds.
    """
    pool: Pool = ConnectionPool(
        url,
        kwargs=_kwargs(url, application_name),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        name=application_name,
    )
    if open_now:
        try:
            pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            pool.close()
            raise DatabaseUnavailableError(
                f"database: the connection pool on {redact_url(url)} could not open {min_size} "
                f"connection(s) within {timeout:g}s ({exc}); is the server running?"
            ) from exc
    return pool
