"""Reading a push body into snapshots: one JSON object (`application/json`) or one per line
(`application/x-ndjson`), each validated against the wire contract (`kcloud.records.parse_snapshot`),
then checked against the pushing token's vendor, against who owns what it names (`kcloud.ownership`, the
ingest's rule, given the registrations read) and against the accepted window of event times
(`kcloud.timewindow`, the ingest's too). Pure: no I/O, most unit tests call this.

Each snapshot keeps its position (index, and NDJSON line number) so that every rejection names where
it was: `line 3, column 17: Expecting ',' delimiter`, or `devices.0.power_w: ...`.

Example:
    >>> batch = read_body(b'{"schema": "kcloud.telemetry/1", ...}', "json", max_snapshots=1000)  # doctest: +SKIP
    >>> batch.items[0].snapshot.node.node_id
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from gateway.models import GatewayError, RejectedSnapshot
from kcloud import timewindow
from kcloud.ownership import NodeOwner, check
from kcloud.records import InvalidSnapshot, NodeSnapshot, parse_snapshot
from kcloud.timewindow import TimeWindow

__all__ = [
    "NDJSON_TYPES",
    "BodyItem",
    "MediaKind",
    "Violation",
    "media_kind",
    "outside_window",
    "ownership_violations",
    "read_body",
    "vendor_violations",
]

MediaKind = Literal["json", "ndjson"]
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq")


@dataclass(frozen=True)
class BodyItem:
    """One snapshot of a request: parsed (`snapshot`) or refused (`reason`, `detail`)."""

    index: int
    line: int | None
    raw: bytes
    snapshot: NodeSnapshot | None = None
    reason: str | None = None
    detail: str | None = None
    node_id: str | None = None
    seq: int | None = None

    def rejected(self, reason: str | None = None, detail: str | None = None) -> RejectedSnapshot:
        """This item as a rejection (its own reason, or the one given)."""
        return RejectedSnapshot(
            index=self.index,
            line=self.line,
            node_id=self.node_id,
            seq=self.seq,
            reason=reason or self.reason or "invalid_field",
            detail=detail or self.detail or "",
        )


@dataclass(frozen=True)
class Violation:
    """A snapshot that speaks for another vendor than the token's (`vendor_mismatch`, `source_mismatch`), or
    touches what another vendor owns or a node at another site (the reasons of `kcloud.ownership`)."""

    item: BodyItem
    reason: str
    detail: str


def media_kind(content_type: str | None) -> MediaKind:
    """`json` or `ndjson` from a Content-Type header; anything else is a 415 naming what is accepted."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if not base:
        raise GatewayError(
            415,
            "unsupported_media_type",
            "the request has no Content-Type; send application/json (one snapshot) or "
            "application/x-ndjson (one snapshot per line)",
        )
    if base == "application/json":
        return "json"
    if base in NDJSON_TYPES:
        return "ndjson"
    raise GatewayError(
        415,
        "unsupported_media_type",
        f"Content-Type {base!r} is not accepted; send application/json (one snapshot) or "
        "application/x-ndjson (one snapshot per line)",
    )


def _peek(raw: bytes) -> tuple[str | None, int | None]:
    """node_id and seq of a body that may be invalid, for naming it in a rejection."""
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    node = doc.get("node")
    node_id = node.get("node_id") if isinstance(node, dict) else None
    seq = doc.get("seq")
    return (
        node_id if isinstance(node_id, str) else None,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
    )


def _where(line: int | None) -> str:
    return f"line {line}" if line is not None else "body"


def _parse(index: int, line: int | None, raw: bytes) -> BodyItem:
    where = _where(line)
    try:
        snap = parse_snapshot(raw)
    except InvalidSnapshot as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            row = cause.lineno + (line - 1 if line is not None else 0)
            detail = f"invalid JSON at line {row}, column {cause.colno}: {cause.msg}"
        else:
            detail = f"{where}: {exc.detail}"
        if exc.reason == "invalid_json" and raw.lstrip().startswith(b"[") and line is None:
            detail += "; send several snapshots as NDJSON (Content-Type: application/x-ndjson), one per line"
        node_id, seq = _peek(raw) if exc.reason != "invalid_json" else (None, None)
        return BodyItem(index, line, raw, reason=exc.reason, detail=detail, node_id=node_id, seq=seq)
    return BodyItem(index, line, raw, snapshot=snap, node_id=snap.node.node_id, seq=snap.seq)


def read_body(body: bytes, kind: MediaKind, max_snapshots: int) -> list[BodyItem]:
    """Every snapshot of the body, parsed or refused; a 400 for an empty body, a 413 for too many."""
    if kind == "json":
        if not body.strip():
            raise GatewayError(400, "empty_body", "the request body is empty; send one snapshot as JSON")
        return [_parse(0, None, body)]
    lines = [(n, text) for n, text in enumerate(body.split(b"\n"), start=1) if text.strip()]
    if not lines:
        raise GatewayError(400, "empty_body", "the request body is empty; send one snapshot per line as NDJSON")
    if len(lines) > max_snapshots:
        raise GatewayError(
            413,
            "too_many_snapshots",
            f"the request holds {len(lines)} snapshots, more than the {max_snapshots} allowed in one request; "
            "split it into several requests",
        )
    return [_parse(i, n, text.rstrip(b"\r")) for i, (n, text) in enumerate(lines)]


def vendor_violations(items: list[BodyItem], vendor: str, token_id: str) -> list[Violation]:
    """Parsed snapshots with a device of another vendor, or a source other than `push:<vendor>`."""
    found: list[Violation] = []
    for item in items:
        snap = item.snapshot
        if snap is None:
            continue
        foreign = [d for d in snap.devices if d.vendor != vendor]
        if foreign:
            dev = foreign[0]
            more = f" (and {len(foreign) - 1} more device(s) of other vendors)" if len(foreign) > 1 else ""
            found.append(
                Violation(
                    item,
                    "vendor_mismatch",
                    f"device {dev.device_uuid!r} on node {snap.node.node_id!r} has vendor {dev.vendor!r}, but "
                    f"token {token_id} belongs to vendor {vendor!r}{more}; a token may push only its own "
                    "vendor's devices",
                )
            )
        elif snap.source != f"push:{vendor}":
            found.append(
                Violation(
                    item,
                    "source_mismatch",
                    f"source is {snap.source!r}, but token {token_id} belongs to vendor {vendor!r}: "
                    f"pushed snapshots say source 'push:{vendor}'",
                )
            )
    return found


def ownership_violations(
    items: list[BodyItem], nodes: Mapping[str, NodeOwner], devices: Mapping[str, str]
) -> list[Violation]:
    """Parsed snapshots that name a device registered to another vendor, a node of another vendor or a node
    registered at another site, given the registered `nodes` and device owners `devices` (the ingest's rule:
    `kcloud.ownership.check`, the first claim in the request wins)."""
    parsed = [i for i in items if i.snapshot is not None]
    verdict = check([i.snapshot for i in parsed if i.snapshot is not None], nodes, devices)
    return [Violation(parsed[index], reason, detail) for index, reason, detail in verdict.refused]


def outside_window(items: list[BodyItem], window: TimeWindow, now: datetime) -> list[BodyItem]:
    """`items`, with every parsed snapshot whose `collected_at` is outside `window` at `now` turned into a
    refused one (reason `timestamp_out_of_range`, as the ingest would dead-letter it)."""
    out: list[BodyItem] = []
    for item in items:
        snap = item.snapshot
        why = window.problem(snap.collected_at, now) if snap is not None else None
        if why is None:
            out.append(item)
        else:
            out.append(replace(item, snapshot=None, reason=timewindow.REASON, detail=f"{_where(item.line)}: {why}"))
    return out
