"""deployment_events is the evidence ledger: append-only, and its hash chain cannot fork or dangle."""

from __future__ import annotations

import psycopg
import pytest

from kcloud.db.connect import Connection

_INSERT = (
    "INSERT INTO deployment_events (device_uuid, event, at, node_id, site_id, details, prev_hash, hash) "
    "VALUES (%s, %s, now(), 'node-1', 'site-1', '{}', %s, %s) RETURNING seq"
)


def _append(conn: Connection, prev_hash: str | None, hash_: str, event: str = "commissioned") -> int:
    row = conn.execute(_INSERT, ("dev-1", event, prev_hash, hash_)).fetchone()
    assert row is not None
    return int(row[0])


def test_events_can_be_appended_as_a_chain(conn: Connection) -> None:
    _append(conn, None, "h1")
    _append(conn, "h1", "h2", "active")
    _append(conn, "h2", "h3", "idle")
    assert conn.execute("SELECT count(*) FROM deployment_events").fetchone() == (3,)


def test_updating_a_deployment_event_is_refused_with_a_clear_message(conn: Connection) -> None:
    seq = _append(conn, None, "h1")
    with pytest.raises(psycopg.errors.RestrictViolation) as err:
        conn.execute("UPDATE deployment_events SET event = 'returned' WHERE seq = %s", (seq,))
    assert f"deployment_events is append-only: UPDATE of seq {seq} refused" in str(err.value)
    assert conn.execute("SELECT event FROM deployment_events").fetchone() == ("commissioned",)


def test_deleting_a_deployment_event_is_refused_with_a_clear_message(conn: Connection) -> None:
    seq = _append(conn, None, "h1")
    with pytest.raises(psycopg.errors.RestrictViolation) as err:
        conn.execute("DELETE FROM deployment_events WHERE seq = %s", (seq,))
    assert f"deployment_events is append-only: DELETE of seq {seq} refused" in str(err.value)
    assert err.value.diag.message_hint is not None and "correcting event" in err.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM deployment_events").fetchone() == (1,)


def test_truncating_the_ledger_is_refused(conn: Connection) -> None:
    _append(conn, None, "h1")
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only: TRUNCATE refused"):
        conn.execute("TRUNCATE deployment_events")


def test_the_chain_cannot_fork(conn: Connection) -> None:
    _append(conn, None, "h1")
    _append(conn, "h1", "h2")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _append(conn, "h1", "h2-fork")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _append(conn, None, "second-genesis")


def test_the_chain_cannot_point_at_a_missing_row(conn: Connection) -> None:
    _append(conn, None, "h1")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        _append(conn, "no-such-hash", "h2")
