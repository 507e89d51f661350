"""Who owns what the telemetry names: the one rule, shared by the vendor gateway (which answers 403) and
the stream ingest (which dead-letters), that a snapshot touches only its own vendor's things.

A device belongs to the vendor it was first registered with (`devices.vendor_id`), a node to the vendor
of the devices it first reported (`nodes.vendor_id`, NULL while it reported none, or the devices of
several vendors in one snapshot) and to its site (`nodes.site_id`). Telemetry never changes either: a
snapshot is refused, whole, when

* its node is registered at another site (`node_at_other_site`),
* its node belongs to a vendor and the snapshot speaks for another one (`node_owned_by_other_vendor`):
  one of its devices names another vendor, or, with no devices, its `source` is another vendor's push,
* one of its devices is registered to another vendor (`device_owned_by_other_vendor`).

Within one batch the first snapshot (in batch order, which is a node's order) that names an unregistered
device or node claims it. A device moving between nodes of its own vendor is a relocation and stays
legitimate (`streams.deployments` records it); moving a device or a node to another vendor or a node to
another site is an operator's change to the `devices`/`nodes` rows, never a push.

Pure given what is registered (`kcloud.db.owners` reads it). Imports only `kcloud.records`: every stage
may use it.

Example:
    >>> from datetime import UTC, datetime
    >>> from kcloud.records import DeviceSample, NodeSnapshot
    >>> snap = NodeSnapshot(node={"node_id": "n1", "site_id": "s1"}, source="push:furiosa",
    ...     collected_at=datetime(2026, 12, 7, tzinfo=UTC), seq=0, devices=[])
    >>> check([snap], {"n1": NodeOwner("s1", "rebellions")}, {}).refused[0][1]
    'node_owned_by_other_vendor'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kcloud.records import NodeSnapshot

__all__ = [
    "DEVICE_OTHER_VENDOR",
    "NODE_OTHER_SITE",
    "NODE_OTHER_VENDOR",
    "REASONS",
    "NodeOwner",
    "Verdict",
    "check",
    "problem",
    "snapshot_vendor",
    "speaker",
]

DEVICE_OTHER_VENDOR = "device_owned_by_other_vendor"
NODE_OTHER_VENDOR = "node_owned_by_other_vendor"
NODE_OTHER_SITE = "node_at_other_site"
#: every reason code of this rule (the gateway's 403 `error`, the ingest's dead-letter reason)
REASONS = (DEVICE_OTHER_VENDOR, NODE_OTHER_VENDOR, NODE_OTHER_SITE)

_PUSH = "push:"


@dataclass(frozen=True, slots=True)
class NodeOwner:
    """A node's registration: its site and its vendor (None: not bound to one vendor yet)."""

    site_id: str
    vendor_id: str | None


@dataclass(frozen=True)
class Verdict:
    """The outcome for a batch: the refused snapshots (index, reason, detail), and the vendor each
    accepted node is to be registered with (None: none yet)."""

    refused: list[tuple[int, str, str]]
    node_vendors: dict[str, str | None]


def snapshot_vendor(snap: NodeSnapshot) -> str | None:
    """The one vendor of a snapshot's devices (None: no devices, or several vendors)."""
    vendors = {d.vendor for d in snap.devices}
    return vendors.pop() if len(vendors) == 1 else None


def speaker(snap: NodeSnapshot) -> str | None:
    """The vendor a snapshot speaks for: the one vendor of its devices, or, with none, the vendor of a
    `push:<vendor>` source (None: several vendors, or a snapshot with no devices from a collector)."""
    if snap.devices:
        return snapshot_vendor(snap)
    return snap.source.removeprefix(_PUSH) if snap.source.startswith(_PUSH) else None


def problem(
    snap: NodeSnapshot,
    node: NodeOwner | None,
    devices: Mapping[str, str],
    claimed: Mapping[str, str] | None = None,
) -> tuple[str, str] | None:
    """Why `snap` may not be stored, as (reason, detail), given its node's registration `node` (None: not
    registered), the registered device owners `devices` (device_uuid -> vendor) and the devices `claimed`
    earlier in the same batch; None when it may."""
    node_id = snap.node.node_id
    if node is not None and node.site_id != snap.node.site_id:
        return NODE_OTHER_SITE, (
            f"node {node_id!r} is registered at site {node.site_id!r}, not {snap.node.site_id!r}; telemetry never "
            "moves a node to another site (an operator does)"
        )
    if node is not None and node.vendor_id is not None:
        for dev in snap.devices:
            if dev.vendor != node.vendor_id:
                return NODE_OTHER_VENDOR, (
                    f"node {node_id!r} belongs to vendor {node.vendor_id!r}; device {dev.device_uuid!r} names vendor "
                    f"{dev.vendor!r}: nothing of this snapshot is stored"
                )
        voice = speaker(snap)
        if not snap.devices and voice is not None and voice != node.vendor_id:
            return NODE_OTHER_VENDOR, (
                f"node {node_id!r} belongs to vendor {node.vendor_id!r}; a snapshot of it with no devices from "
                f"source {snap.source!r} speaks for vendor {voice!r}: nothing of this snapshot is stored"
            )
    for dev in snap.devices:
        owner = devices.get(dev.device_uuid) or (claimed or {}).get(dev.device_uuid)
        if owner is not None and owner != dev.vendor:
            return DEVICE_OTHER_VENDOR, (
                f"device {dev.device_uuid!r} belongs to vendor {owner!r}, not {dev.vendor!r} (node {node_id!r}): "
                "nothing of this snapshot is stored"
            )
    return None


def check(snapshots: Sequence[NodeSnapshot], nodes: Mapping[str, NodeOwner], devices: Mapping[str, str]) -> Verdict:
    """Which of `snapshots` touch what belongs to another vendor or site, given the registered `nodes` (by
    node_id) and device owners `devices` (device_uuid -> vendor)."""
    known = dict(nodes)
    claimed: dict[str, str] = {}
    refused: list[tuple[int, str, str]] = []
    node_vendors: dict[str, str | None] = {}
    for i, snap in enumerate(snapshots):
        node_id = snap.node.node_id
        node = known.get(node_id)
        found = problem(snap, node, devices, claimed)
        if found is not None:
            refused.append((i, *found))
            continue
        for dev in snap.devices:
            if dev.device_uuid not in devices:
                claimed.setdefault(dev.device_uuid, dev.vendor)
        vendor = snapshot_vendor(snap)
        if node is None or (node.vendor_id is None and vendor is not None):
            node = known[node_id] = NodeOwner(snap.node.site_id, vendor)
        node_vendors[node_id] = node.vendor_id
    return Verdict(refused, node_vendors)
