"""Verifying the ledger: recompute every row's hash in order and find the first row that breaks the chain.

A row is broken when its `prev_hash` is not the hash of the row before it (a row was removed or
reordered) or when its stored `hash` is not the hash of its content (the row was changed). Rows stream
from a server-side cursor, so memory stays flat however long the ledger is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from kcloud.ledger.chain import LedgerRow, row_hash

__all__ = ["Break", "VerifyResult", "verify_ledger"]

_ROWS_SQL = (
    "SELECT seq, device_uuid, event, at, node_id, site_id, details, prev_hash, hash FROM deployment_events ORDER BY seq"
)


@dataclass(frozen=True)
class Break:
    """The first row at which the chain does not hold, and why."""

    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """Rows checked; the head (seq, hash) of the intact chain; the first break, if any."""

    rows: int
    head_seq: int | None
    head_hash: str | None
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify_ledger(
    conn: psycopg.Connection[Any], progress: Callable[[int], None] | None = None, until_rows: int | None = None
) -> VerifyResult:
    """Walk the chain from the first row (or its first `until_rows` rows); stop at the first break."""
    prev: str | None = None
    head_seq: int | None = None
    rows = 0
    with conn.transaction(), conn.cursor(name="kcloud_ledger_verify") as cur:
        cur.itersize = 5000
        cur.execute(_ROWS_SQL)
        for seq, device_uuid, event, at, node_id, site_id, details, prev_hash, stored in cur:
            if until_rows is not None and rows >= until_rows:
                break
            if prev_hash != prev:
                want = "no previous row" if prev is None else f"previous hash {prev[:16]}…"
                got = "none" if prev_hash is None else f"{prev_hash[:16]}…"
                reason = f"prev_hash is {got} but the chain has {want} (a row before it was removed or reordered)"
                return VerifyResult(rows, head_seq, prev, Break(int(seq), reason))
            expected = row_hash(prev, LedgerRow(device_uuid, event, at, node_id, site_id, details))
            if stored != expected:
                reason = f"content does not match its hash {stored[:16]}… (the row was changed after it was written)"
                return VerifyResult(rows, head_seq, prev, Break(int(seq), reason))
            prev, head_seq = stored, int(seq)
            rows += 1
            if progress is not None and rows % 5000 == 0:
                progress(rows)
    return VerifyResult(rows, head_seq, prev, None)
