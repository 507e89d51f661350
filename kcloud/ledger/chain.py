"""The hash chain of `deployment_events`: canonical row form, row hashes and appending.

Each ledger row stores `hash = SHA-256(prev_hash + "\\n" + canonical_json(row))`, where `prev_hash` is the
hash of the row before it (the empty string for the first row) and `canonical_json` is the row's content
(device, event, time, place, details) as compact, key-sorted UTF-8 JSON with the time in UTC to the
microsecond. Changing, removing or reordering any row breaks every hash after it, which is what
`kcloud ledger verify` checks.

Appending takes a transaction-level advisory lock, reads the head and chains the new rows onto it, so
concurrent writers (several stream workers, an operator's `kcloud device decommission`) serialise and the
chain never forks (the table's UNIQUE (prev_hash) would refuse a fork anyway).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kcloud.records import DeploymentEvent

__all__ = ["LEDGER_LOCK", "LedgerHead", "LedgerRow", "append_events", "canonical_json", "head", "row_hash"]

#: pg_advisory_xact_lock key of ledger appends ("kcledger")
LEDGER_LOCK = 0x6B636C6564676572


@dataclass(frozen=True)
class LedgerRow:
    """The hashed content of one `deployment_events` row."""

    device_uuid: str
    event: str
    at: datetime
    node_id: str | None
    site_id: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class LedgerHead:
    """The newest row of the ledger: how many rows there are, its seq and its hash (None when empty)."""

    count: int
    seq: int | None
    hash: str | None


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(row: LedgerRow) -> str:
    """The row as compact, key-sorted JSON: the exact text that is hashed."""
    body = {
        "at": _utc(row.at),
        "details": row.details,
        "device_uuid": row.device_uuid,
        "event": row.event,
        "node_id": row.node_id,
        "site_id": row.site_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(prev_hash: str | None, row: LedgerRow) -> str:
    """SHA-256 (hex) of the previous hash, a newline and the row's canonical JSON."""
    text = (prev_hash or "") + "\n" + canonical_json(row)
    return hashlib.sha256(text.encode()).hexdigest()


def head(conn: psycopg.Connection[Any]) -> LedgerHead:
    """The ledger's row count and newest row."""
    count_row = conn.execute("SELECT count(*) FROM deployment_events").fetchone()
    last = conn.execute("SELECT seq, hash FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
    count = int(count_row[0]) if count_row else 0
    if last is None:
        return LedgerHead(count, None, None)
    return LedgerHead(count, int(last[0]), str(last[1]))


def _normalised_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as they will read back from jsonb (so the stored row hashes the same when verified)."""
    loaded: dict[str, Any] = json.loads(json.dumps(details, allow_nan=False, default=str))
    return loaded


def append_events(
    conn: psycopg.Connection[Any], events: Sequence[DeploymentEvent], device_ids: Mapping[str, int]
) -> list[str]:
    """Append `events` in order to the ledger inside the caller's transaction; returns their hashes.

    `device_ids` maps each event's device_uuid to its `devices.device_id`.
    """
    if not events:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
    last = conn.execute("SELECT hash FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
    prev: str | None = str(last[0]) if last else None
    rows: list[tuple[Any, ...]] = []
    hashes: list[str] = []
    for ev in events:
        details = _normalised_details(ev.details)
        h = row_hash(prev, LedgerRow(ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, details))
        rows.append(
            (
                device_ids.get(ev.device_uuid),
                ev.device_uuid,
                ev.event,
                ev.at,
                ev.node_id,
                ev.site_id,
                Jsonb(details),
                prev,
                h,
            )
        )
        hashes.append(h)
        prev = h
    # one COPY: rows take their seq in this order
    with conn.cursor().copy(
        "COPY deployment_events (device_id, device_uuid, event, at, node_id, site_id, details, prev_hash, hash)"
        " FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    return hashes
