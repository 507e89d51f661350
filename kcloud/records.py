"""Wire records: the pydantic models of what travels on the project's Kafka topics.

`NodeSnapshot` is one message on `kcloud.telemetry.v1` (one node, one tick, many `DeviceSample`s);
`DeadLetter` is one message on `kcloud.deadletter.v1`; `DeploymentEvent` one on
`kcloud.deployments.v1`. Units are fixed by the field names (see `kcloud/catalog.yaml`); a value out of
its physical range is a validation error naming the field, never clamped, and a reading the source
cannot give is null, never a made-up zero.

Example:
    >>> snap = parse_snapshot(b'{"schema": "kcloud.telemetry/1", ...}')  # doctest: +SKIP
    >>> snap.devices[0].power_w
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "DEPLOYMENT_EVENT_TYPES",
    "MEM_ROWS_RETIRED_MAX",
    "SCHEMA_TAG",
    "THROUGHPUT_MAX",
    "XID_MAX",
    "Attribution",
    "DeadLetter",
    "DeploymentEvent",
    "DeviceSample",
    "InvalidSnapshot",
    "NodeRef",
    "NodeSnapshot",
    "Throughput",
    "canonical_device_uuid",
    "parse_snapshot",
]

SCHEMA_TAG: Final = "kcloud.telemetry/1"

Health = Literal["ok", "degraded", "failed", "unknown"]
Kind = Literal["gpu", "npu"]
DEPLOYMENT_EVENT_TYPES = (
    "commissioned",
    "active",
    "idle",
    "offline",
    "returned",
    "health_changed",
    "relocated",
    "decommissioned",
)
EventType = Literal[
    "commissioned", "active", "idle", "offline", "returned", "health_changed", "relocated", "decommissioned"
]

#: identifiers (node, site, host, device, slice, bus ids) are printable ASCII without blanks; names read by
#: people (model, arch, workload, attribution) are printable ASCII with inner blanks allowed: a byte-order
#: mark, a right-to-left override, a non-character or a control character is refused, never stored
_BLANK_FREE = "printable ASCII without blanks"
_PRINTABLE = "printable ASCII"


def _first_bad(value: str, blanks: bool) -> str | None:
    """A description of the first character of `value` outside the allowed set, or None."""
    if value.isascii() and value.isprintable() and (blanks or " " not in value):
        return None
    for i, ch in enumerate(value):
        if not (ch.isascii() and ch.isprintable()) or (ch == " " and not blanks):
            return f"U+{ord(ch):04X} at position {i}"
    return None  # pragma: no cover -- unreachable: some character failed the test above


def _text_check(what: str, blanks: bool) -> AfterValidator:
    def check(value: str) -> str:
        bad = _first_bad(value, blanks)
        if bad is not None:
            raise ValueError(f"must be {what}, found {bad}")
        if blanks and value != value.strip():
            raise ValueError("must not start or end with a blank")
        return value

    return AfterValidator(check)


_IDENT_TEXT = _text_check(_BLANK_FREE, blanks=False)
_NAME_TEXT = _text_check(_PRINTABLE, blanks=True)

Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]
Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=64, to_lower=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
]
#: a host name as DNS spells it (RFC 1123: at most 253 characters, letters, digits, '-', '.')
Hostname = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128), _NAME_TEXT]
#: Kubernetes names: a namespace or container is at most 63 characters, a pod at most 253
AttributionName = Annotated[str, StringConstraints(min_length=1, max_length=253), _NAME_TEXT]
#: a device's index on its node, its PCI bus id, the slice it is (`mig:gi1`, `vnpu:3`)
DeviceIndex = Annotated[str, StringConstraints(max_length=32), _IDENT_TEXT]
ShortIdent = Annotated[str, StringConstraints(max_length=64), _IDENT_TEXT]
#: what names a workload (`llama-3.1-8b-instruct`); each distinct (workload, unit) becomes a stored row
WorkloadName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
]
#: a throughput unit (`tokens/s`, `images/s`, `streams`)
ThroughputUnit = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z][A-Za-z0-9_/.%-]*$")]
Source = Annotated[
    str,
    StringConstraints(pattern=r"^(nvml|nvidia-smi|sim|prom:[a-z0-9_-]{1,32}|push:[a-z0-9_-]{1,64})$"),
]

#: the largest throughput value (units per second of one device): a billion, three orders of magnitude
#: above any accelerator's tokens/s or images/s, and far inside the float4 (`real`) column that stores it
THROUGHPUT_MAX: Final = 1e9
#: the largest XID code accepted: NVIDIA's published codes stay below 200; four digits leave room and fit
#: the smallint column that stores it
XID_MAX: Final = 9999
#: the most retired pages or remapped rows one device can report: drivers cap retired pages at 64 and
#: remap at most a few per memory bank (hundreds per device); far inside the smallint column
MEM_ROWS_RETIRED_MAX: Final = 16384


def canonical_device_uuid(raw: str) -> str:
    """Lower-case, surrounding blanks and a `GPU-` prefix stripped; a `MIG-` prefix is kept.

    >>> canonical_device_uuid("GPU-1F2A3B4C-0000-1111-2222-333344445555")
    '1f2a3b4c-0000-1111-2222-333344445555'
    """
    value = raw.strip().lower()
    if value.startswith("gpu-"):
        value = value[4:]
    if not value:
        raise ValueError("device_uuid is empty")
    if len(value) > 128:
        raise ValueError("device_uuid is longer than 128 characters")
    bad = _first_bad(value, blanks=False)
    if bad is not None:
        raise ValueError(f"device_uuid must be {_BLANK_FREE}, found {bad}")
    return value


DeviceUuid = Annotated[str, AfterValidator(canonical_device_uuid)]

_WIRE = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Throughput(BaseModel):
    """Work served by the device in the sample interval: the numerator of performance per watt."""

    model_config = _WIRE
    value: float = Field(ge=0, le=THROUGHPUT_MAX)
    unit: ThroughputUnit
    workload: WorkloadName


class Attribution(BaseModel):
    """Who the device (or its slice) is allocated to. A shared device says so in every sample."""

    model_config = _WIRE
    tenant: AttributionName | None = None
    namespace: AttributionName | None = None
    pod: AttributionName | None = None
    container: AttributionName | None = None


class DeviceSample(BaseModel):
    """One accelerator (or one slice of it) at one instant, in canonical units."""

    model_config = _WIRE

    device_uuid: DeviceUuid
    vendor: Slug
    kind: Kind
    model: Label | None = None
    arch: Label | None = None
    index: DeviceIndex | None = None
    pci_bus_id: ShortIdent | None = None
    subdevice: ShortIdent | None = None
    util_pct: float | None = Field(None, ge=0, le=100)
    mem_used_bytes: int | None = Field(None, ge=0, le=2**50)
    mem_total_bytes: int | None = Field(None, ge=0, le=2**50)
    power_w: float | None = Field(None, ge=0, le=5000)
    power_limit_w: float | None = Field(None, ge=0, le=5000)
    energy_j: float | None = Field(None, ge=0, le=1e15)
    temp_c: float | None = Field(None, ge=-40, le=150)
    clock_mhz: float | None = Field(None, ge=0, le=10000)
    health: Health | None = None
    ecc_uncorrected: int | None = Field(None, ge=0, le=2**53)
    # what kind of work keeps the device busy (AI, video or nothing): engine activity, percent of time
    sm_active_pct: float | None = Field(None, ge=0, le=100)
    tensor_active_pct: float | None = Field(None, ge=0, le=100)
    dram_active_pct: float | None = Field(None, ge=0, le=100)
    enc_util_pct: float | None = Field(None, ge=0, le=100)
    dec_util_pct: float | None = Field(None, ge=0, le=100)
    # health signals: last XID (0 = none seen), throttling now, NVLink errors, memory rows retired/remapped
    xid_last: int | None = Field(None, ge=0, le=XID_MAX)
    throttle_power: bool | None = None
    throttle_thermal: bool | None = None
    nvlink_errors: int | None = Field(None, ge=0, le=2**53)
    mem_rows_retired: int | None = Field(None, ge=0, le=MEM_ROWS_RETIRED_MAX)
    mem_repair_pending: bool | None = None
    mem_repair_failed: bool | None = None
    throughput: Throughput | None = None
    attribution: Attribution | None = None

    @model_validator(mode="after")
    def _memory_fits(self) -> DeviceSample:
        if (
            self.mem_used_bytes is not None
            and self.mem_total_bytes is not None
            and self.mem_used_bytes > self.mem_total_bytes
        ):
            raise ValueError(f"mem_used_bytes ({self.mem_used_bytes}) exceeds mem_total_bytes ({self.mem_total_bytes})")
        return self


class NodeRef(BaseModel):
    """The node a snapshot comes from."""

    model_config = _WIRE
    node_id: Ident
    site_id: Ident
    hostname: Hostname | None = None


class NodeSnapshot(BaseModel):
    """One message on `kcloud.telemetry.v1`: every accelerator of one node at one tick; key = node_id."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False, populate_by_name=True)

    schema_tag: Literal["kcloud.telemetry/1"] = Field(SCHEMA_TAG, alias="schema")
    node: NodeRef
    source: Source
    collected_at: AwareDatetime
    seq: int = Field(ge=0, le=2**63 - 1)
    devices: list[DeviceSample] = Field(max_length=4096)

    @field_validator("collected_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00: no such instant in UTC
            raise ValueError(f"{value.isoformat()} is outside the range of dates once converted to UTC") from exc

    @field_validator("devices")
    @classmethod
    def _devices_unique(cls, devices: list[DeviceSample]) -> list[DeviceSample]:
        seen: dict[tuple[str, str | None], int] = {}
        for i, dev in enumerate(devices):
            key = (dev.device_uuid, dev.subdevice)
            if key in seen:
                raise ValueError(
                    f"device_uuid {dev.device_uuid!r} (subdevice {dev.subdevice!r}) appears at "
                    f"devices[{seen[key]}] and devices[{i}]; send each device once per snapshot"
                )
            seen[key] = i
        return devices

    def to_json_bytes(self) -> bytes:
        """The wire form: compact JSON with `schema` first."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class InvalidSnapshot(ValueError):  # noqa: N818 -- public name, used by every stage
    """A message that is not a valid snapshot: `reason` is a stable code, `detail` says what and where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "snapshot"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_snapshot(raw: bytes | str) -> NodeSnapshot:
    """Validate one wire message. Raises `InvalidSnapshot` with reason `invalid_json`, `unknown_schema`
    or `invalid_field` and a detail naming the field(s) at fault."""
    if isinstance(raw, bytes) and b"\\u0000" not in raw:
        # the common case in one pass of the model's own (Rust) parser; whatever it rejects is classified
        # by the full path below, so the reason and the detail do not depend on which path saw it first
        with contextlib.suppress(ValidationError):
            return NodeSnapshot.model_validate_json(raw)
    try:
        # The wire is UTF-8 only: json.loads alone would also accept UTF-16/32 bytes, which the model's
        # own JSON parser then rejects as a field error.
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidSnapshot("invalid_json", f"message is not UTF-8: {exc}") from exc
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSnapshot("invalid_json", str(exc)) from exc
    except RecursionError as exc:
        raise InvalidSnapshot("invalid_json", "arrays or objects nested too deeply to parse") from exc
    if not isinstance(doc, dict):
        raise InvalidSnapshot("invalid_json", f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA_TAG:
        raise InvalidSnapshot("unknown_schema", f"schema is {doc.get('schema')!r}, expected {SCHEMA_TAG!r}")
    if "\\u0000" in text:  # cheap test first: JSON can carry NUL only as this escape
        where = _nul_location(doc)
        if where is not None:
            raise InvalidSnapshot(
                "invalid_field", f"{where}: contains a NUL character (\\u0000), which text storage cannot hold"
            )
    try:
        return NodeSnapshot.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidSnapshot("invalid_field", _describe_errors(exc)) from exc


def _nul_location(doc: Any) -> str | None:
    """Dotted path of a key or string value holding a NUL character, or None."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return path or "snapshot"
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return here
                stack.append((here, value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}", value) for i, value in enumerate(node))
    return None


class DeadLetter(BaseModel):
    """One message on `kcloud.deadletter.v1`: the rejected bytes, where they came from and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    detail: str
    stage: str = Field(description="what rejected it: ingest, gateway, collector:<name>")
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    original_b64: str
    rejected_at: AwareDatetime

    @classmethod
    def from_bytes(
        cls,
        original: bytes,
        *,
        reason: str,
        detail: str,
        stage: str,
        source_topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> DeadLetter:
        return cls(
            reason=reason,
            detail=detail,
            stage=stage,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", "replace") if key is not None else None,
            original_b64=base64.b64encode(original).decode("ascii"),
            rejected_at=datetime.now(UTC),
        )

    def original(self) -> bytes:
        """The bytes exactly as they were received."""
        return base64.b64decode(self.original_b64)


class DeploymentEvent(BaseModel):
    """One lifecycle transition of a device on `kcloud.deployments.v1` (and a row of `deployment_events`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    device_uuid: DeviceUuid
    vendor: Slug
    event: EventType
    at: AwareDatetime
    node_id: Ident
    site_id: Ident
    details: dict[str, Any] = Field(default_factory=dict)


AlertRule = Literal["node_silent", "temp_high", "health_failed", "ecc_rising", "site_stalled", "fleet_stalled"]


class AlertMessage(BaseModel):
    """An alert opening or resolving, on `kcloud.alerts.v1` (and a row of `alerts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    action: Literal["opened", "resolved"]
    fingerprint: str
    rule: AlertRule
    severity: Literal["info", "warning", "critical"]
    node_id: Ident | None = None  # None: an alert about a site or the fleet, not one node
    site_id: Ident | None = None  # None: an alert about the whole fleet
    device_uuid: str | None = None
    vendor: str | None = None
    summary: str
    started_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
