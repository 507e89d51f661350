"""The simulated fleet replays exactly, and its fast path writes exactly what the pydantic path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collectors.simulator import SimulatedFleet
from kcloud.records import parse_snapshot

DAY_START = datetime(2026, 11, 2, 15, 0, 7, tzinfo=UTC)  # a Tuesday, 00:00:07 KST


def test_same_seed_replays_the_same_bytes_and_another_seed_does_not() -> None:
    at = DAY_START + timedelta(hours=5)
    first = SimulatedFleet(nodes=60, seed=42).tick_bytes(at, seq=3)
    again = SimulatedFleet(nodes=60, seed=42).tick_bytes(at, seq=3)
    other = SimulatedFleet(nodes=60, seed=43).tick_bytes(at, seq=3)
    assert first == again
    assert [v for _, v in first] != [v for _, v in other]


def test_a_nodes_layout_does_not_depend_on_the_fleet_size() -> None:
    small, large = SimulatedFleet(nodes=12, seed=9), SimulatedFleet(nodes=400, seed=9)
    at = DAY_START + timedelta(hours=2)
    plain = set(range(12)) - small.conditions(at).special - large.conditions(at).special
    small_msgs, large_msgs = dict(small.tick_bytes(at, 1)), dict(large.tick_bytes(at, 1))
    for node in plain:
        key = small.node_id(node).encode()
        assert small_msgs.get(key) == large_msgs.get(key)
        assert small.site(node) == large.site(node)


def test_fast_path_equals_pydantic_path_including_faults_relocations_and_idle(fleet: SimulatedFleet) -> None:
    seen = {"degraded": 0, "failed": 0, "relocated": 0, "no_attribution": 0, "no_throughput": 0, "streams": 0}
    for hours in (1, 7, 13, 19, 30):
        at = DAY_START + timedelta(hours=hours, microseconds=250_000)
        cond = fleet.conditions(at)
        fast = dict(fleet.tick_bytes(at, seq=hours))
        wanted = sorted(cond.special - cond.offline) + list(range(0, fleet.nodes, 97))
        for node in wanted:
            if node in cond.offline:
                continue
            snap = fleet.snapshot(node, at, seq=hours)
            assert fast[snap.node.node_id.encode()] == snap.to_json_bytes(), f"node {node} at {at}"
            for dev in snap.devices:
                seen["degraded"] += dev.health == "degraded"
                seen["failed"] += dev.health == "failed"
                seen["relocated"] += dev.device_uuid not in {fleet.device_uuid(node, i) for i in range(8)}
                seen["no_attribution"] += dev.attribution is None
                seen["no_throughput"] += dev.throughput is None
                seen["streams"] += dev.throughput is not None and dev.throughput.unit == "streams"
    assert all(seen.values()), seen


def test_fast_path_equals_pydantic_path_for_other_shapes_of_fleet() -> None:
    fleet = SimulatedFleet(nodes=20, seed=5, devices_per_node=3, node_prefix="edge-7")
    at = datetime(2027, 3, 6, 23, 59, 59, 999_999, tzinfo=UTC)  # a Sunday morning in KST
    for key, value in fleet.tick_bytes(at, seq=2**40):
        node = int(key.decode().rsplit("-", 1)[1])
        assert value == fleet.snapshot(node, at, seq=2**40).to_json_bytes()


def test_every_snapshot_of_a_thousand_node_tick_validates(day: list[Any]) -> None:
    _, raw, _ = day[3]
    for key, value in raw:
        snap = parse_snapshot(value)
        assert snap.node.node_id.encode() == key
        assert snap.source == "sim"
        assert len(snap.devices) == 8


def test_tick_leaves_out_offline_nodes_that_snapshot_still_builds() -> None:
    fleet = SimulatedFleet(nodes=60, seed=4)
    at = next(
        DAY_START + timedelta(minutes=m)
        for m in range(0, 7 * 24 * 60, 5)
        if fleet.conditions(DAY_START + timedelta(minutes=m)).offline
    )
    offline = fleet.conditions(at).offline
    node = min(offline)
    assert not fleet.online(node, at)
    assert fleet.node_id(node).encode() not in dict(fleet.tick_bytes(at, 0))
    assert len(fleet.tick(at, 0)) == fleet.nodes - len(offline)
    assert fleet.snapshot(node, at, 0).node.node_id == fleet.node_id(node)


def test_bad_arguments_are_refused_with_a_message() -> None:
    fleet = SimulatedFleet(nodes=2)
    with pytest.raises(ValueError, match="no time zone"):
        fleet.tick_bytes(datetime(2026, 11, 1), 0)
    with pytest.raises(ValueError, match="seq must be >= 0"):
        fleet.tick_bytes(DAY_START, -1)
    with pytest.raises(IndexError, match="outside this fleet of 2 nodes"):
        fleet.snapshot(2, DAY_START, 0)
    with pytest.raises(ValueError, match="at least one node"):
        SimulatedFleet(nodes=0)
