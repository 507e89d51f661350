"""The wire contract of `kcloud.telemetry.v1`: what `parse_snapshot` accepts, normalises and rejects.

Every value here is synthetic (made up for the test), not a capture from real hardware.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kcloud.records import (
    SCHEMA_TAG,
    DeadLetter,
    DeviceSample,
    InvalidSnapshot,
    NodeRef,
    NodeSnapshot,
    Throughput,
    parse_snapshot,
)

# Synthetic: one node with one GPU and one NPU, every optional field of the first device filled in.
_VALID: dict[str, Any] = {
    "schema": SCHEMA_TAG,
    "node": {"node_id": "node-a01", "site_id": "site-daejeon", "hostname": "a01.example"},
    "source": "sim",
    "collected_at": "2025-06-01T18:30:00.250000+09:00",
    "seq": 42,
    "devices": [
        {
            "device_uuid": "0a1b2c3d-0000-1111-2222-333344445555",
            "vendor": "nvidia",
            "kind": "gpu",
            "model": "H100 SXM",
            "arch": "hopper",
            "index": "0",
            "pci_bus_id": "00000000:1B:00.0",
            "subdevice": "mig-1g.10gb-0",
            "util_pct": 73.5,
            "mem_used_bytes": 40_000_000_000,
            "mem_total_bytes": 85_899_345_920,
            "power_w": 512.25,
            "power_limit_w": 700.0,
            "energy_j": 123_456_789.5,
            "temp_c": 61.0,
            "clock_mhz": 1980.0,
            "health": "ok",
            "ecc_uncorrected": 0,
            "throughput": {"value": 2150.5, "unit": "tokens/s", "workload": "llama-3-8b"},
            "attribution": {"tenant": "kisti", "namespace": "llm", "pod": "serve-0", "container": "vllm"},
        },
        {"device_uuid": "npu-7f00", "vendor": "furiosa", "kind": "npu", "util_pct": 12.0, "power_w": 35.0},
    ],
}


def _doc(**changes: Any) -> dict[str, Any]:
    """A deep copy of the valid snapshot with top-level keys replaced."""
    doc = copy.deepcopy(_VALID)
    doc.update(changes)
    return doc


def _with_device(**changes: Any) -> dict[str, Any]:
    """The valid snapshot with keys of its first device replaced."""
    doc = _doc()
    doc["devices"][0].update(changes)
    return doc


def _rejection(raw: dict[str, Any] | bytes | str) -> InvalidSnapshot:
    wire = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    with pytest.raises(InvalidSnapshot) as excinfo:
        parse_snapshot(wire)
    return excinfo.value


# --- rejected ------------------------------------------------------------------------------------


def test_wrong_schema_tag_is_rejected_as_unknown_schema_naming_the_field() -> None:
    err = _rejection(_doc(schema="kcloud.telemetry/2"))
    assert err.reason == "unknown_schema"
    assert "schema" in str(err)
    assert "'kcloud.telemetry/2'" in err.detail


def test_missing_node_id_is_rejected_naming_the_field() -> None:
    doc = _doc()
    del doc["node"]["node_id"]
    err = _rejection(doc)
    assert err.reason == "invalid_field"
    assert "node.node_id" in str(err)


def test_negative_power_is_rejected_naming_the_field() -> None:
    err = _rejection(_with_device(power_w=-1.0))
    assert err.reason == "invalid_field"
    assert "devices.0.power_w" in str(err)


def test_util_over_100_percent_is_rejected_naming_the_field() -> None:
    err = _rejection(_with_device(util_pct=150))
    assert err.reason == "invalid_field"
    assert "devices.0.util_pct" in str(err)
    assert "100" in err.detail


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("tensor_active_pct", 100.5, "100"),
        ("enc_util_pct", -1, "0"),
        ("xid_last", 10000, "9999"),
        ("mem_rows_retired", 16385, "16384"),
        ("nvlink_errors", -3, "0"),
    ],
)
def test_activity_or_health_counter_out_of_bounds_is_rejected_naming_the_field_and_bound(
    field: str, value: float, bound: str
) -> None:
    err = _rejection(_with_device(**{field: value}))
    assert err.reason == "invalid_field"
    assert f"devices.0.{field}" in str(err)
    assert bound in err.detail


@pytest.mark.parametrize("value", ["true", 1, 0])
def test_a_throttle_flag_must_be_true_or_false_not_a_string_or_number(value: object) -> None:
    err = _rejection(_with_device(throttle_thermal=value))
    assert err.reason == "invalid_field"
    assert "devices.0.throttle_thermal" in str(err)


def test_counters_a_device_does_not_report_stay_off_the_wire_and_false_and_zero_stay_on_it() -> None:
    snap = parse_snapshot(json.dumps(_with_device(xid_last=0, throttle_power=False, enc_util_pct=0.0)).encode())
    wire = json.loads(snap.to_json_bytes())["devices"][0]
    assert (wire["xid_last"], wire["throttle_power"], wire["enc_util_pct"]) == (0, False, 0.0)
    assert "throttle_thermal" not in wire and "tensor_active_pct" not in wire and "nvlink_errors" not in wire


def test_unparsable_json_is_rejected_as_invalid_json_naming_the_position() -> None:
    err = _rejection(b'{"schema": "kcloud.telemetry/1", "node": ')
    assert err.reason == "invalid_json"
    assert "line 1 column" in str(err)


def test_naive_timestamp_without_offset_is_rejected_naming_the_field() -> None:
    err = _rejection(_doc(collected_at="2025-06-01T09:30:00"))
    assert err.reason == "invalid_field"
    assert "collected_at" in str(err)
    assert "timezone" in err.detail


def test_util_sent_as_a_string_is_rejected_naming_the_field() -> None:
    err = _rejection(_with_device(util_pct="50"))
    assert err.reason == "invalid_field"
    assert "devices.0.util_pct" in str(err)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_reading_is_rejected_naming_the_field(literal: str) -> None:
    # json.dumps writes float("nan") as the bare token NaN, which Python's json (and pydantic's) accepts.
    raw = json.dumps(_with_device(temp_c=float(literal.replace("Infinity", "inf"))))
    assert literal in raw
    err = _rejection(raw)
    assert err.reason == "invalid_field"
    assert "devices.0.temp_c" in str(err)
    assert "finite" in err.detail


def test_device_appearing_twice_in_one_snapshot_is_rejected_naming_the_field() -> None:
    doc = _doc()
    doc["devices"].append(dict(doc["devices"][0], device_uuid="GPU-0A1B2C3D-0000-1111-2222-333344445555"))
    err = _rejection(doc)
    assert err.reason == "invalid_field"
    assert str(err).startswith("invalid_field: devices: ")
    assert "0a1b2c3d-0000-1111-2222-333344445555" in err.detail
    assert "devices[0] and devices[2]" in err.detail


def test_same_device_with_different_subdevices_is_accepted() -> None:
    doc = _doc()
    doc["devices"].append(dict(doc["devices"][0], subdevice="mig-1g.10gb-1"))
    assert len(parse_snapshot(json.dumps(doc)).devices) == 3


def test_memory_used_above_total_is_rejected_naming_both_fields() -> None:
    err = _rejection(_with_device(mem_used_bytes=2000, mem_total_bytes=1000))
    assert err.reason == "invalid_field"
    assert "devices.0" in str(err)
    assert "mem_used_bytes (2000) exceeds mem_total_bytes (1000)" in err.detail


def test_unknown_extra_field_is_rejected_naming_the_field() -> None:
    err = _rejection(_with_device(power_mw=512250))
    assert err.reason == "invalid_field"
    assert "devices.0.power_mw" in str(err)
    assert "Extra inputs are not permitted" in err.detail


def test_message_that_is_not_utf8_is_rejected_as_invalid_json() -> None:
    err = _rejection(b'{"schema": "kcloud.telemetry/1", "x": "\xff\xfe"}')
    assert err.reason == "invalid_json"
    assert "UTF-8" in err.detail


def test_utf16_encoded_message_is_rejected_as_invalid_json_not_as_a_field_error() -> None:
    # json.loads would decode UTF-16 bytes, but the wire is UTF-8 and pydantic's parser refuses them.
    err = _rejection(json.dumps(_VALID).encode("utf-16"))
    assert err.reason == "invalid_json"
    assert "UTF-8" in err.detail


def test_json_that_is_not_an_object_is_rejected_as_invalid_json() -> None:
    err = _rejection(b"[1, 2, 3]")
    assert err.reason == "invalid_json"
    assert "list" in err.detail


# --- accepted and normalised ---------------------------------------------------------------------


def test_gpu_prefix_is_stripped_and_uuid_lower_cased() -> None:
    snap = parse_snapshot(json.dumps(_with_device(device_uuid=" GPU-0A1B2C3D-AAAA-BBBB-CCCC-DDDDEEEEFFFF ")))
    assert snap.devices[0].device_uuid == "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"


def test_collected_at_is_converted_to_utc_keeping_the_instant() -> None:
    snap = parse_snapshot(json.dumps(_VALID))
    assert snap.collected_at.utcoffset() == timedelta(0)
    assert snap.collected_at == datetime(2025, 6, 1, 9, 30, 0, 250000, tzinfo=UTC)
    assert b'"collected_at":"2025-06-01T09:30:00.250000Z"' in snap.to_json_bytes()


def test_valid_snapshot_round_trips_through_wire_bytes_unchanged() -> None:
    snap = parse_snapshot(json.dumps(_VALID).encode())
    wire = snap.to_json_bytes()
    again = parse_snapshot(wire)
    assert again == snap
    assert again.to_json_bytes() == wire
    assert wire.startswith(b'{"schema":"kcloud.telemetry/1",')


def test_snapshot_built_in_python_round_trips_through_wire_bytes_unchanged() -> None:
    snap = NodeSnapshot(
        node=NodeRef(node_id="node-b07", site_id="site-gwangju"),
        source="prom:rbln",
        collected_at=datetime(2025, 6, 1, 9, 30, tzinfo=UTC),
        seq=0,
        devices=[
            DeviceSample(
                device_uuid="rbln-0001",
                vendor="rebellions",
                kind="npu",
                util_pct=0.0,
                health="degraded",
                throughput=Throughput(value=0.0, unit="images/s", workload="resnet50"),
            )
        ],
    )
    assert parse_snapshot(snap.to_json_bytes()) == snap


def test_dead_letter_keeps_the_original_bytes_exactly_including_invalid_utf8() -> None:
    original = b'\xff\xfe{"schema": "kcloud.telemetry/1", \x00\x80 broken'
    letter = DeadLetter.from_bytes(
        original,
        reason="invalid_json",
        detail="message is not UTF-8",
        stage="ingest",
        source_topic="kcloud.telemetry.v1",
        partition=3,
        offset=1207,
        key=b"node-a01",
    )
    assert letter.original() == original
    # ... and still exactly after it has itself travelled as JSON on kcloud.deadletter.v1.
    assert DeadLetter.model_validate_json(letter.model_dump_json()).original() == original
    assert letter.key == "node-a01"
    assert letter.rejected_at.tzinfo is not None
