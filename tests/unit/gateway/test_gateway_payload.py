"""Reading a push body: every snapshot keeps its position, every refusal names where and why, a
snapshot speaking for another vendor or naming what another vendor owns is found, and a time outside
the accepted window is refused by itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.models import GatewayError
from gateway.payload import media_kind, outside_window, ownership_violations, read_body, vendor_violations
from kcloud.ownership import NodeOwner
from kcloud.timewindow import TimeWindow


def snap(node_id: str = "n1", vendor: str = "furiosa", source: str | None = None, devices: int = 1) -> dict[str, Any]:
    return {
        "schema": "kcloud.telemetry/1",
        "node": {"node_id": node_id, "site_id": "s1"},
        "source": source or f"push:{vendor}",
        "collected_at": "2026-03-14T12:00:00+00:00",
        "seq": 5,
        "devices": [{"device_uuid": f"{node_id}-{i}", "vendor": vendor, "kind": "npu"} for i in range(devices)],
    }


def lines(*docs: dict[str, Any] | bytes) -> bytes:
    return b"\n".join(d if isinstance(d, bytes) else json.dumps(d).encode() for d in docs) + b"\n"


def test_ndjson_snapshots_keep_their_line_numbers_and_blank_lines_are_skipped() -> None:
    body = lines(snap("a")) + b"\n  \n" + lines(snap("b"))
    items = read_body(body, "ndjson", max_snapshots=10)
    assert [(i.index, i.line, i.node_id, i.snapshot is not None) for i in items] == [
        (0, 1, "a", True),
        (1, 4, "b", True),
    ]


def test_a_broken_ndjson_line_is_refused_with_its_line_and_column_and_the_others_stand() -> None:
    items = read_body(lines(snap("a"), b'{"schema": "kcloud.telemetry/1", "seq": 1,}', snap("c")), "ndjson", 10)
    assert [i.snapshot is not None for i in items] == [True, False, True]
    bad = items[1].rejected()
    assert (bad.line, bad.reason) == (2, "invalid_json")
    assert bad.detail.startswith("invalid JSON at line 2, column 43:")


def test_a_broken_json_body_names_line_and_column() -> None:
    [item] = read_body(b'{\n  "schema": "kcloud.telemetry/1"\n  "node": {}\n}', "json", 10)
    assert item.reason == "invalid_json"
    assert item.detail == "invalid JSON at line 3, column 3: Expecting ',' delimiter"


def test_a_json_array_is_refused_with_a_hint_to_send_ndjson() -> None:
    [item] = read_body(json.dumps([snap()]).encode(), "json", 10)
    assert item.reason == "invalid_json" and "application/x-ndjson" in (item.detail or "")


def test_a_field_out_of_range_is_named_with_the_node_it_came_from() -> None:
    doc = snap("hot")
    doc["devices"][0]["temp_c"] = 999
    [item] = read_body(lines(doc), "ndjson", 10)
    assert (item.reason, item.node_id, item.seq) == ("invalid_field", "hot", 5)
    assert "devices.0.temp_c" in (item.detail or "")


def test_empty_bodies_and_too_many_snapshots_are_refused() -> None:
    with pytest.raises(GatewayError) as empty:
        read_body(b"\n \n", "ndjson", 10)
    assert empty.value.status == 400
    with pytest.raises(GatewayError) as many:
        read_body(lines(*(snap(f"n{i}") for i in range(4))), "ndjson", 3)
    assert many.value.status == 413 and "4 snapshots" in many.value.message and "3 allowed" in many.value.message


def test_a_device_of_another_vendor_is_named_with_both_vendors() -> None:
    mixed = snap("dgx", vendor="furiosa", devices=1)
    mixed["devices"].append({"device_uuid": "GPU-ABC", "vendor": "nvidia", "kind": "gpu"})
    items = read_body(lines(snap("ok"), mixed), "ndjson", 10)
    [violation] = vendor_violations(items, "furiosa", "0123456789ab")
    assert violation.item.line == 2 and violation.reason == "vendor_mismatch"
    assert "'abc'" in violation.detail and "'nvidia'" in violation.detail and "'furiosa'" in violation.detail


def test_a_snapshot_claiming_another_source_is_a_violation() -> None:
    items = read_body(lines(snap("n", source="nvml")), "ndjson", 10)
    [violation] = vendor_violations(items, "furiosa", "0123456789ab")
    assert violation.reason == "source_mismatch" and "push:furiosa" in violation.detail


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [("application/json", "json"), ("application/json; charset=utf-8", "json"), ("application/x-ndjson", "ndjson")],
)
def test_json_and_ndjson_content_types_are_understood(content_type: str, kind: str) -> None:
    assert media_kind(content_type) == kind


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_get_415_naming_what_is_accepted(content_type: str | None) -> None:
    with pytest.raises(GatewayError) as err:
        media_kind(content_type)
    assert err.value.status == 415 and "application/x-ndjson" in err.value.message


def test_what_another_vendor_owns_is_found_with_the_ingests_rule_and_named() -> None:
    items = read_body(
        lines(snap("mine"), snap("theirs"), snap("empty", devices=0), snap("moved"), snap("stolen")), "ndjson", 10
    )
    nodes = {
        "theirs": NodeOwner("s1", "rebellions"),
        "empty": NodeOwner("s1", "rebellions"),
        "moved": NodeOwner("s2", "furiosa"),
    }
    found = ownership_violations(items, nodes, {"stolen-0": "rebellions", "mine-0": "furiosa"})
    assert [(v.item.line, v.reason) for v in found] == [
        (2, "node_owned_by_other_vendor"),
        (3, "node_owned_by_other_vendor"),
        (4, "node_at_other_site"),
        (5, "device_owned_by_other_vendor"),
    ]
    assert "'stolen-0'" in found[3].detail and "'rebellions'" in found[3].detail
    assert ownership_violations(items[:1], nodes, {"mine-0": "furiosa"}) == []


def test_times_outside_the_window_are_refused_each_and_the_others_stand() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    window = TimeWindow(max_ahead=timedelta(seconds=300), max_behind=timedelta(days=7))
    docs = []
    for node, at in [
        ("ahead-in", now + timedelta(seconds=299)),
        ("ahead-out", now + timedelta(seconds=301)),
        ("behind-in", now - timedelta(days=7) + timedelta(seconds=1)),
        ("behind-out", now - timedelta(days=7, seconds=1)),
    ]:
        doc = snap(node)
        doc["collected_at"] = at.isoformat()
        docs.append(doc)
    items = outside_window(read_body(lines(*docs), "ndjson", 10), window, now)
    assert [(i.node_id, i.snapshot is not None, i.reason) for i in items] == [
        ("ahead-in", True, None),
        ("ahead-out", False, "timestamp_out_of_range"),
        ("behind-in", True, None),
        ("behind-out", False, "timestamp_out_of_range"),
    ]
    assert items[1].detail is not None and items[1].detail.startswith("line 2: ")
    assert items[3].rejected().reason == "timestamp_out_of_range"
