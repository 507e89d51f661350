"""Verifying the ledger: every row's hash, content and signature in order, and the checkpoints it must extend.

A row is broken when
- its `prev_hash` is not the hash of the row before it (a row was removed or reordered);
- its stored `hash` is not the hash of its content (the row was changed): for form 2 the hash of the
  stored `content` text, for form 1 (rows written before migration 0008) of its columns;
- a typed column (device_id, device_uuid, event, at, node_id, site_id, details) does not say what its
  hashed `content` says (a column was changed behind the hash);
- it is of form 1 after a form-2 row (form 1 is only the history from before the upgrade);
- no append signed by the trusted key covers it (a row added by someone without the writer's key,
  however correctly chained), or its append's signature does not hold; the first append after the
  upgrade covers the form-1 history too (until then, only a checkpoint protects it);
- a checkpoint signed by the trusted key names a different hash for its row count, or more rows than the
  ledger has (rows removed at the end).
Verification stops at the first break. Rows stream from a server-side cursor, so memory stays flat
however long the ledger is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kcloud.ledger.chain import FORM, LedgerRow, content_hash, row_hash, utc_text
from kcloud.ledger.checkpoint import Checkpoint
from kcloud.ledger.keys import TrustedKeys

__all__ = ["Break", "VerifyResult", "verify_ledger"]

_ROWS_SQL = (
    "SELECT seq, device_id, device_uuid, event, at, node_id, site_id, details::text, prev_hash, hash, content,"
    " signature, signed_rows FROM deployment_events ORDER BY seq"
)
_UNCOVERED = "no append signed by the trusted key covers this row (it was added by someone without the ledger key)"
_COLUMNS = ("device_id", "device_uuid", "event", "at", "node_id", "site_id", "details")


@dataclass(frozen=True)
class Break:
    """The first row at which the ledger does not hold (None: past its end), and why."""

    seq: int | None
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """Rows checked; the head (seq, hash) of the intact chain; the first break, if any; how many rows are of
    form 1, how many signed appends were checked, and the newest checkpoint the ledger was found to extend."""

    rows: int
    head_seq: int | None
    head_hash: str | None
    broken: Break | None
    form1_rows: int = 0
    signed_appends: int = 0
    signatures_checked: bool = False
    checkpoint: Checkpoint | None = None
    checkpoints_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None


def _tagged(value: Any) -> Any:
    """`value` with each scalar tagged by its JSON type, so that `true` and `1` differ as they do in jsonb."""
    if isinstance(value, dict):
        return {k: _tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tagged(v) for v in value]
    return (type(value).__name__, value)


def _exact(text: str) -> Any:
    """JSON with every number as an exact Decimal, typed: how jsonb compares values (-0.0 = 0, 1e308 = 10^308)."""
    return _tagged(json.loads(text, parse_float=Decimal, parse_int=Decimal))


def _column_differs(content: str, columns: dict[str, Any]) -> str | None:
    """The first typed column that does not say what `content` says, with both values; None when all agree."""
    try:
        body = _exact(content)
    except ValueError:
        return "content"
    if not isinstance(body, dict) or body.get("form") != ("Decimal", Decimal(FORM)):
        return "content"
    for name in _COLUMNS:
        value = columns[name]
        if name == "details":
            value = _exact(value)
        elif isinstance(value, datetime):
            value = _tagged(utc_text(value))
        else:
            value = _tagged(Decimal(value) if isinstance(value, int) else value)
        if name not in body or body[name] != value:
            return name
    return None


def verify_ledger(
    conn: psycopg.Connection[Any],
    progress: Callable[[int], None] | None = None,
    *,
    trusted_key: Ed25519PublicKey | TrustedKeys | None = None,
    checkpoints: Sequence[Checkpoint] = (),
) -> VerifyResult:
    """Walk the chain from the first row; stop at the first break.

    Signatures are checked when `trusted_key` is given (otherwise `signatures_checked` is False and unsigned
    rows pass); `checkpoints` must already be known to be signed by the trusted key.
    """
    trusted = None if trusted_key is None else TrustedKeys.of(trusted_key)
    wanted: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        wanted.setdefault(cp.row_count, []).append(cp)
    newest: Checkpoint | None = None
    prev: str | None = None
    head_seq: int | None = None
    rows = form1 = appends = 0
    covered = 0  # rows up to here belong to a signed append (or to the form-1 history)
    first_uncovered: int | None = None  # seq of the row after `covered`
    seen_form2 = False

    covered_head: tuple[int | None, str | None] = (None, None)

    def result(broken: Break | None, upto_covered: bool = False) -> VerifyResult:
        n, at_seq, at_hash = (covered, *covered_head) if upto_covered else (rows, head_seq, prev)
        return VerifyResult(
            n, at_seq, at_hash, broken, form1, appends, trusted_key is not None, newest, len(checkpoints)
        )

    with conn.transaction(), conn.cursor(name="kcloud_ledger_verify") as cur:
        cur.itersize = 5000
        cur.execute(_ROWS_SQL)
        for record in cur:
            seq, device_id, uuid, event, at, node_id, site_id, details, prev_hash, stored, content, sig, n = record
            seq = int(seq)
            if prev_hash != prev:
                want = "no previous row" if prev is None else f"previous hash {prev[:16]}…"
                got = "none" if prev_hash is None else f"{prev_hash[:16]}…"
                reason = f"prev_hash is {got} but the chain has {want} (a row before it was removed or reordered)"
                return result(Break(seq, reason))
            if content is None:
                if seen_form2:
                    return result(Break(seq, "a row of form 1 (no content) after form-2 rows: it was added later"))
                expected = row_hash(prev, LedgerRow(uuid, event, at, node_id, site_id, json.loads(details)))
            else:
                expected = content_hash(prev, content)
            if stored != expected:
                reason = f"content does not match its hash {stored[:16]}… (the row was changed after it was written)"
                return result(Break(seq, reason))
            if content is not None:
                seen_form2 = True
                columns = {
                    "device_id": device_id,
                    "device_uuid": uuid,
                    "event": event,
                    "at": at,
                    "node_id": node_id,
                    "site_id": site_id,
                    "details": details,
                }
                differs = _column_differs(content, columns)
                if differs is not None:
                    reason = (
                        f"column {differs} does not say what the row's hashed content says "
                        "(the column was changed after it was written)"
                    )
                    return result(Break(seq, reason))
            prev, head_seq = stored, seq
            rows += 1
            form1 += 1 if content is None else 0
            if trusted_key is None:
                covered, covered_head = rows, (seq, stored)
            else:
                if first_uncovered is None:
                    first_uncovered = seq
                if sig is not None:
                    if trusted is None or not trusted.check_append(stored, int(n), sig):
                        return result(Break(seq, "its append's signature does not hold under the trusted key"))
                    if rows - int(n) != covered:
                        return result(Break(first_uncovered, _UNCOVERED), upto_covered=True)
                    appends += 1
                    covered, covered_head = rows, (seq, stored)
                    first_uncovered = None
            for cp in wanted.get(rows, ()):
                if cp.head_hash != stored:
                    reason = (
                        f"the {cp.describe()} names hash {cp.head_hash} for row {rows}, the ledger holds {stored} "
                        "(rows up to it were rewritten)"
                    )
                    return result(Break(seq, reason))
                newest = cp
            if progress is not None and rows % 5000 == 0:
                progress(rows)
    unsealed = covered != rows and not seen_form2  # form-1 history the next append will sign
    if covered != rows and not unsealed:
        return result(Break(first_uncovered, _UNCOVERED), upto_covered=True)
    longer = [cp for cp in checkpoints if cp.row_count > rows]
    if longer:
        cp = max(longer, key=lambda c: c.row_count)
        reason = (
            f"the ledger has {rows} row(s) but the {cp.describe()} was signed over more: "
            f"{cp.row_count - rows} row(s) were removed from its end"
        )
        return result(Break(None, reason))
    empty = [cp for cp in checkpoints if cp.row_count == 0]
    if newest is None and empty:
        newest = empty[0]
    done = result(None)
    if unsealed:
        done.notes.append(
            f"the {rows} row(s) of form 1 are not signed yet: the next append signs them (or take a checkpoint now)"
        )
    return done
