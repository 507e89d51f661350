"""Which snapshots touch what belongs to another vendor or site: refused whole, the first claim in a batch wins,
and a device moving between nodes of its own vendor stays legitimate."""

from __future__ import annotations

from datetime import UTC, datetime

from kcloud.ownership import speaker
from kcloud.records import DeviceSample, NodeSnapshot
from streams.ownership import NodeOwner, check, snapshot_vendor

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _snap(node: str, vendor: str, *uuids: str, site: str = "s1", source: str = "sim") -> NodeSnapshot:
    return NodeSnapshot(
        node={"node_id": node, "site_id": site},
        source=source,
        collected_at=AT,
        seq=0,
        devices=[DeviceSample(device_uuid=u, vendor=vendor, kind="npu") for u in uuids],
    )


def test_another_vendors_registered_device_is_refused() -> None:
    verdict = check([_snap("n9", "furiosa", "card-1")], {}, {"card-1": "rebellions"})
    assert [(i, reason) for i, reason, _ in verdict.refused] == [(0, "device_owned_by_other_vendor")]
    assert "card-1" in verdict.refused[0][2] and "rebellions" in verdict.refused[0][2]


def test_another_vendors_node_and_a_node_at_another_site_are_refused() -> None:
    nodes = {"n1": NodeOwner("s1", "rebellions")}
    verdict = check([_snap("n1", "furiosa", "new-1"), _snap("n1", "rebellions", "new-2", site="s2")], nodes, {})
    assert [r for _, r, _ in verdict.refused] == ["node_owned_by_other_vendor", "node_at_other_site"]
    assert verdict.node_vendors == {}


def test_a_device_moving_between_nodes_of_its_own_vendor_is_a_relocation() -> None:
    nodes = {"n1": NodeOwner("s1", "rebellions"), "n2": NodeOwner("s1", "rebellions")}
    verdict = check([_snap("n2", "rebellions", "card-1")], nodes, {"card-1": "rebellions"})
    assert verdict.refused == [] and verdict.node_vendors == {"n2": "rebellions"}


def test_within_a_batch_the_first_claim_of_a_new_device_or_node_wins() -> None:
    batch = [_snap("n1", "rebellions", "card-1"), _snap("n2", "furiosa", "card-1"), _snap("n1", "furiosa", "x")]
    verdict = check(batch, {}, {})
    assert [(i, r) for i, r, _ in verdict.refused] == [
        (1, "device_owned_by_other_vendor"),
        (2, "node_owned_by_other_vendor"),
    ]
    assert verdict.node_vendors == {"n1": "rebellions"}


def test_an_unbound_node_is_bound_by_its_first_single_vendor_snapshot() -> None:
    mixed = NodeSnapshot(
        node={"node_id": "m", "site_id": "s1"},
        source="sim",
        collected_at=AT,
        seq=0,
        devices=[
            DeviceSample(device_uuid="a", vendor="nvidia", kind="gpu"),
            DeviceSample(device_uuid="b", vendor="furiosa", kind="npu"),
        ],
    )
    assert snapshot_vendor(mixed) is None
    verdict = check([_snap("e", "nvidia"), mixed, _snap("e", "furiosa", "c")], {}, {})
    assert verdict.refused == [] and verdict.node_vendors == {"e": "furiosa", "m": None}


def test_a_snapshot_with_no_devices_speaks_for_the_vendor_of_its_push_source() -> None:
    nodes = {"n1": NodeOwner("s1", "rebellions")}
    empty = [_snap("n1", "furiosa", source=s) for s in ("push:furiosa", "push:rebellions", "sim")]
    assert [speaker(s) for s in empty] == ["furiosa", "rebellions", None]
    verdict = check(empty, nodes, {})
    assert [(i, r) for i, r, _ in verdict.refused] == [(0, "node_owned_by_other_vendor")]
    assert "'push:furiosa'" in verdict.refused[0][2]
    assert verdict.node_vendors == {"n1": "rebellions"}
