"""The hash chain of `deployment_events`: canonical row form, row hashes, signed appending.

Each ledger row stores `hash = SHA-256(prev_hash + "\\n" + content)`, where `prev_hash` is the hash of the
row before it (the empty string for the first row). Since migration 0008 (form 2) `content` is stored in
the row itself: the exact text that was hashed, compact key-sorted JSON of every column a figure reads
(device_id, device_uuid, event, time in UTC to the microsecond, node, site, details). Verifying hashes
the stored text, so a value that PostgreSQL would store differently (`-0.0`, `1e308` in jsonb) can no
longer make an honest row fail; the typed columns must then say exactly what `content` says. Rows of
form 1 (before 0008) have no `content`: their hash is recomputed from their columns, without device_id.

Each append (one transaction of the stream worker or of `kcloud device decommission`) signs its last row:
the writer's Ed25519 signature of that row's hash and the number of rows the append covers (`keys`): the
rows it wrote, and for the first append after migration 0008 the form-1 history before them too. A row
added by anyone without the key, chained correctly or not, is not covered by any signature.

Appending takes a transaction-level advisory lock, reads the head and chains the new rows onto it, so
concurrent writers serialise and the chain never forks (the table's UNIQUE (prev_hash) would refuse a
fork anyway).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kcloud.ledger.keys import LedgerSigner
from kcloud.records import DeploymentEvent

__all__ = [
    "FORM",
    "LEDGER_LOCK",
    "LedgerHead",
    "LedgerRow",
    "append_events",
    "canonical_json",
    "content_hash",
    "head",
    "row_content",
    "row_hash",
    "storable",
]

#: pg_advisory_xact_lock key of ledger appends ("kcledger")
LEDGER_LOCK = 0x6B636C6564676572
#: the row form `append_events` writes (1: before migration 0008, hash over columns without device_id)
FORM = 2


@dataclass(frozen=True)
class LedgerRow:
    """The hashed content of one `deployment_events` row."""

    device_uuid: str
    event: str
    at: datetime
    node_id: str | None
    site_id: str | None
    details: Mapping[str, Any]
    device_id: int | None = None


@dataclass(frozen=True)
class LedgerHead:
    """The newest row of the ledger: how many rows there are, its seq and its hash (None when empty)."""

    count: int
    seq: int | None
    hash: str | None


def utc_text(at: datetime) -> str:
    """A time as the ledger spells it: UTC, to the microsecond."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: str) -> str:
    """`value` with what PostgreSQL text cannot hold (NUL, unpaired surrogates) replaced by U+FFFD."""
    if value.isascii() and "\x00" not in value:
        return value
    cleaned = value.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def storable(value: Any) -> Any:
    """`value` as a ledger stores it: JSON types only, finite numbers (NaN and infinities become null), text
    PostgreSQL can hold, string keys; anything else by its `str()`."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return _text(str(value))


def canonical_json(row: LedgerRow) -> str:
    """The form-1 content of a row (before migration 0008): recomputed from its columns, no device_id."""
    body = {
        "at": utc_text(row.at),
        "details": row.details,
        "device_uuid": row.device_uuid,
        "event": row.event,
        "node_id": row.node_id,
        "site_id": row.site_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_content(row: LedgerRow) -> str:
    """The form-2 content of a row: the exact text stored in `content` and hashed (details already `storable`)."""
    body = {
        "at": utc_text(row.at),
        "details": row.details,
        "device_id": row.device_id,
        "device_uuid": row.device_uuid,
        "event": row.event,
        "form": FORM,
        "node_id": row.node_id,
        "site_id": row.site_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(prev_hash: str | None, content: str) -> str:
    """SHA-256 (hex) of the previous hash, a newline and the content text."""
    return hashlib.sha256(((prev_hash or "") + "\n" + content).encode()).hexdigest()


def row_hash(prev_hash: str | None, row: LedgerRow) -> str:
    """The form-1 hash of a row (what rows written before migration 0008 store)."""
    return content_hash(prev_hash, canonical_json(row))


def head(conn: psycopg.Connection[Any]) -> LedgerHead:
    """The ledger's row count and newest row."""
    count_row = conn.execute("SELECT count(*) FROM deployment_events").fetchone()
    last = conn.execute("SELECT seq, hash FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
    count = int(count_row[0]) if count_row else 0
    if last is None:
        return LedgerHead(count, None, None)
    return LedgerHead(count, int(last[0]), str(last[1]))


def append_events(
    conn: psycopg.Connection[Any],
    events: Sequence[DeploymentEvent],
    device_ids: Mapping[str, int],
    *,
    signer: LedgerSigner,
) -> list[str]:
    """Append `events` in order to the ledger inside the caller's transaction, the last row signed by
    `signer`; returns their hashes.

    `device_ids` maps each event's device_uuid to its `devices.device_id`.
    """
    if not events:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
    last = conn.execute("SELECT hash, content IS NULL FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
    prev: str | None = str(last[0]) if last else None
    # the first append after migration 0008 also signs the form-1 history before it (so that it cannot be
    # rewritten later as other form-1 rows)
    history = 0
    if last is not None and last[1]:
        counted = conn.execute("SELECT count(*) FROM deployment_events").fetchone()
        history = int(counted[0]) if counted else 0
    rows: list[list[Any]] = []
    hashes: list[str] = []
    for ev in events:
        details = storable(dict(ev.details))
        device_id = device_ids.get(ev.device_uuid)
        row = LedgerRow(ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, details, device_id)
        content = row_content(row)
        h = content_hash(prev, content)
        rows.append(
            [device_id, ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, Jsonb(details), prev, h, content, None]
        )
        hashes.append(h)
        prev = h
    signed = history + len(rows)
    rows[-1][-1] = signer.sign_append(hashes[-1], signed)
    # one COPY: rows take their seq in this order
    with conn.cursor().copy(
        "COPY deployment_events (device_id, device_uuid, event, at, node_id, site_id, details, prev_hash, hash,"
        " content, signature, signed_rows) FROM STDIN"
    ) as copy:
        for i, row_values in enumerate(rows):
            copy.write_row((*row_values, signed if i == len(rows) - 1 else None))
    return hashes
