"""`POST /v1/telemetry`: where a vendor pushes node snapshots.

A request reads top to bottom as the pipeline it is: authenticate the token (role `vendor`) and take
its rate-limit share, read the body up to `gateway_max_body_bytes`, split it into snapshots (one JSON
object, or NDJSON), validate each against the wire contract, refuse the whole request (403) if any
snapshot speaks for another vendor, or names a device or node registered to another vendor or a node
registered at another site (`kcloud.ownership`, the ingest's rule, on the registrations read once per
request: `gateway.owners`), refuse each snapshot dated outside the accepted window
(`kcloud.timewindow`, the ingest's too: 422 `timestamp_out_of_range` when none is left), then produce the
valid snapshots to `kcloud.telemetry.v1` (key = node_id) and the invalid ones to `kcloud.deadletter.v1`,
and answer 202 only once Kafka has acknowledged every record. What the gateway accepts the ingest
therefore never dead-letters for ownership (barring two vendors racing for a device nobody registered
yet) or time. Nothing accepted: 400 (a body that is not JSON) or 422 (snapshots that are not valid);
Kafka or the database away: 503 with `Retry-After`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from gateway.audit import AuditInfo, audit_of
from gateway.auth import AUTH_RESPONSES, Principal, require_role
from gateway.context import GatewayContext, context_of
from gateway.models import AcceptedSnapshot, ErrorBody, GatewayError, PushResult, RejectedSnapshot
from gateway.payload import (
    BodyItem,
    Violation,
    media_kind,
    outside_window,
    ownership_violations,
    read_body,
    vendor_violations,
)
from gateway.produce import KafkaUnavailable, Record
from kcloud.records import DeadLetter
from kcloud.timewindow import TimeWindow
from kcloud.topics import DEADLETTER, TELEMETRY

__all__ = ["EXAMPLE_SNAPSHOT", "refresh_openapi", "router"]

router = APIRouter(tags=["telemetry"])

_KST = timezone(timedelta(hours=9))

#: a valid snapshot of a FuriosaAI RNGD node (synthetic values): the example of the OpenAPI document, dated
#: when the document is served (`refresh_openapi`), since only a current `collected_at` is accepted
EXAMPLE_SNAPSHOT: dict[str, Any] = {
    "schema": "kcloud.telemetry/1",
    "node": {"node_id": "rngd-node-01", "site_id": "kr-daejeon-1", "hostname": "rngd-node-01.example"},
    "source": "push:furiosa",
    "collected_at": datetime.now(_KST).replace(microsecond=0).isoformat(),
    "seq": 1,
    "devices": [
        {
            "device_uuid": "a1b2c3d4-0000-4000-8000-000000000001",
            "vendor": "furiosa",
            "kind": "npu",
            "model": "RNGD",
            "util_pct": 63.5,
            "mem_used_bytes": 21474836480,
            "mem_total_bytes": 51539607552,
            "power_w": 142.0,
            "temp_c": 51.0,
            "health": "ok",
        }
    ],
}

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "One snapshot as JSON (`application/json`), or many as NDJSON (`application/x-ndjson`: one JSON "
            "snapshot per line). Every device must be of the token's vendor, and `source` must be "
            "`push:<vendor>`. `collected_at` must be the time of the reading: at most `KCLOUD_MAX_CLOCK_AHEAD_S` "
            "(300 s by default) ahead of the gateway's clock and at most `KCLOUD_MAX_BACKFILL_DAYS` (7 by "
            "default) behind it, so send the example with the current time."
        ),
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/NodeSnapshot"},
                "example": EXAMPLE_SNAPSHOT,
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "One NodeSnapshot per line."},
                "example": json.dumps(EXAMPLE_SNAPSHOT) + "\n",
            },
        },
    }
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: {"model": ErrorBody, "description": "The body is empty or not JSON; the position of the error is named."},
    403: {
        "model": ErrorBody,
        "description": "A snapshot has a device of another vendor (or a foreign `source`), names a device or "
        "node registered to another vendor or a node registered at another site, or the token is not a vendor "
        "token; nothing was accepted.",
    },
    413: {"model": ErrorBody, "description": "The body is larger than allowed, or holds too many snapshots."},
    415: {"model": ErrorBody, "description": "The Content-Type is neither JSON nor NDJSON."},
    422: {
        "model": ErrorBody,
        "description": "No snapshot of the request is valid (e.g. `timestamp_out_of_range`: dated outside the "
        "accepted window); each rejection says why.",
    },
}


def refresh_openapi() -> None:
    """Date the documented example now (called each time the OpenAPI document is built)."""
    EXAMPLE_SNAPSHOT["collected_at"] = datetime.now(_KST).replace(microsecond=0).isoformat()
    _REQUEST_BODY["requestBody"]["content"]["application/x-ndjson"]["example"] = json.dumps(EXAMPLE_SNAPSHOT) + "\n"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = GatewayError(
        413,
        "body_too_large",
        f"the request body is larger than the {limit} bytes allowed; send fewer snapshots per request",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect:
        raise GatewayError(
            400, "incomplete_body", f"the client went away after {size} bytes, before the body was complete"
        ) from None
    return b"".join(chunks)


def _dead_letter(item: BodyItem, who: Principal, topic: str) -> Record:
    letter = DeadLetter.from_bytes(
        item.raw,
        reason=item.reason or "invalid_field",
        detail=f"token {who.token_id} (vendor {who.vendor}), snapshot {item.index}: {item.detail}",
        stage="gateway",
        key=item.node_id.encode() if item.node_id else None,
    )
    return Record(topic, letter.key.encode() if letter.key else None, letter.model_dump_json().encode())


def _summary(accepted: int, rejected: list[RejectedSnapshot], who: Principal) -> str:
    total = accepted + len(rejected)
    text = f"gateway: accepted {accepted} of {total} snapshot(s) from token {who.token_id} (vendor {who.vendor})"
    if rejected:
        first = rejected[0]
        where = f"line {first.line}" if first.line is not None else f"snapshot {first.index}"
        text += f"; rejected {len(rejected)}, first at {where}: {first.reason}: {first.detail}"
    return text


@router.post(
    "/v1/telemetry",
    status_code=202,
    response_model=PushResult,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Push node snapshots",
)
async def push_telemetry(request: Request, who: Annotated[Principal, Depends(require_role("vendor"))]) -> PushResult:
    """Validate the snapshots of the body and put the valid ones on Kafka; 202 once Kafka acknowledged them."""
    ctx = context_of(request)
    audit = audit_of(request)
    settings = ctx.settings
    kind = media_kind(request.headers.get("content-type"))
    body = await _read_limited(request, settings.gateway_max_body_bytes)
    audit.bytes = len(body)
    ctx.metrics.bytes.inc(len(body))
    items = read_body(body, kind, settings.gateway_max_snapshots)

    violations = vendor_violations(items, who.vendor, who.token_id)
    if violations:
        raise _refused(items, violations, who, ctx, audit=audit, why="speak for another vendor")
    parsed = [i.snapshot for i in items if i.snapshot is not None]
    if parsed:
        regs = await run_in_threadpool(
            ctx.registrations, {s.node.node_id for s in parsed}, {d.device_uuid for s in parsed for d in s.devices}
        )
        violations = ownership_violations(items, regs.nodes, regs.devices)
        if violations:
            raise _refused(items, violations, who, ctx, audit=audit, why=_FOREIGN)
    items = outside_window(items, TimeWindow.from_settings(settings), datetime.now(UTC))

    good = [i for i in items if i.snapshot is not None]
    bad = [i for i in items if i.snapshot is None]
    rejected = [i.rejected() for i in bad]
    telemetry_topic, dead_topic = settings.topic(TELEMETRY), settings.topic(DEADLETTER)
    records = [_dead_letter(i, who, dead_topic) for i in bad]
    for item in good:
        assert item.snapshot is not None
        records.append(Record(telemetry_topic, item.snapshot.node.node_id.encode(), item.snapshot.to_json_bytes()))

    audit.rejected = len(bad)
    ctx.metrics.snapshots.labels(vendor=who.vendor, outcome="rejected").inc(len(bad))
    assert ctx.kafka is not None
    try:
        await run_in_threadpool(ctx.kafka.deliver, records)
    except KafkaUnavailable as exc:
        ctx.metrics.kafka_failures.inc()
        if not good:  # nothing to accept: the refusal stands, only its dead letters are missing
            raise _nothing_accepted(rejected, who) from exc
        raise GatewayError(
            503,
            "kafka_unavailable",
            f"gateway: nothing of this push was accepted: Kafka did not acknowledge it; send the whole push "
            f"again after {exc.retry_after_s} s",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    if not good:
        raise _nothing_accepted(rejected, who)
    audit.accepted = len(good)
    ctx.metrics.snapshots.labels(vendor=who.vendor, outcome="accepted").inc(len(good))
    accepted = [
        AcceptedSnapshot(index=i.index, line=i.line, node_id=i.node_id, seq=i.seq, devices=len(i.snapshot.devices))
        for i in good
        if i.snapshot is not None
    ]
    return PushResult(message=_summary(len(accepted), rejected, who), accepted=accepted, rejected=rejected)


_FOREIGN = "name what another vendor owns or a node at another site"


def _refused(
    items: list[BodyItem],
    violations: list[Violation],
    who: Principal,
    ctx: GatewayContext,
    *,
    audit: AuditInfo,
    why: str,
) -> GatewayError:
    """The 403 refusing the whole request (nothing of it goes to Kafka), audited and counted."""
    audit.rejected = len(items)
    ctx.metrics.snapshots.labels(vendor=who.vendor, outcome="rejected").inc(len(items))
    first = violations[0]
    return GatewayError(
        403,
        first.reason,
        f"gateway: refused all {len(items)} snapshot(s) from token {who.token_id}: {len(violations)} {why}; "
        f"snapshot {first.item.index}: {first.detail}",
        rejected=[v.item.rejected(v.reason, v.detail) for v in violations],
    )


def _nothing_accepted(rejected: list[RejectedSnapshot], who: Principal) -> GatewayError:
    syntax = any(r.reason == "invalid_json" for r in rejected)
    return GatewayError(
        400 if syntax else 422,
        "invalid_json" if syntax else "invalid_snapshots",
        _summary(0, rejected, who),
        rejected=rejected,
    )
