"""Who owns what the telemetry names: the ingest's check that a snapshot touches only its own vendor's things.

A device belongs to the vendor it was first registered with (`devices.vendor_id`), a node to the vendor
of the devices it first reported (`nodes.vendor_id`, NULL while it reported none, or the devices of
several vendors in one snapshot) and to its site (`nodes.site_id`). Telemetry never changes either: a
snapshot is refused, whole, when

* its node is registered at another site (`node_at_other_site`),
* its node belongs to a vendor and one of its devices names another one (`node_owned_by_other_vendor`),
* one of its devices is registered to another vendor (`device_owned_by_other_vendor`).

Within one batch the first snapshot (in batch order, which is a node's order) that names an unregistered
device or node claims it. A device moving between nodes of its own vendor is a relocation and stays
legitimate (`streams.deployments` records it); moving a device or a node to another vendor or a node to
another site is an operator's change to the `devices`/`nodes` rows, never a push.

`check` is pure given what is registered; `OwnershipCache` keeps the device owners read (a device's vendor
never changes once registered) so that a batch of known devices costs no query. Imports only
`kcloud.records` and psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from kcloud.records import NodeSnapshot

__all__ = [
    "DEVICE_OTHER_VENDOR",
    "NODE_OTHER_SITE",
    "NODE_OTHER_VENDOR",
    "NodeOwner",
    "OwnershipCache",
    "Verdict",
    "check",
    "snapshot_vendor",
]

DEVICE_OTHER_VENDOR = "device_owned_by_other_vendor"
NODE_OTHER_VENDOR = "node_owned_by_other_vendor"
NODE_OTHER_SITE = "node_at_other_site"


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


def _problem(
    snap: NodeSnapshot, node: NodeOwner | None, devices: Mapping[str, str], claimed: Mapping[str, str]
) -> tuple[str, str] | None:
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
                    f"{dev.vendor!r}: nothing of this snapshot was stored"
                )
    for dev in snap.devices:
        owner = devices.get(dev.device_uuid) or claimed.get(dev.device_uuid)
        if owner is not None and owner != dev.vendor:
            return DEVICE_OTHER_VENDOR, (
                f"device {dev.device_uuid!r} belongs to vendor {owner!r}, not {dev.vendor!r} (node {node_id!r}): "
                "nothing of this snapshot was stored"
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
        problem = _problem(snap, node, devices, claimed)
        if problem is not None:
            refused.append((i, *problem))
            continue
        for dev in snap.devices:
            if dev.device_uuid not in devices:
                claimed.setdefault(dev.device_uuid, dev.vendor)
        vendor = snapshot_vendor(snap)
        if node is None or (node.vendor_id is None and vendor is not None):
            node = known[node_id] = NodeOwner(snap.node.site_id, vendor)
        node_vendors[node_id] = node.vendor_id
    return Verdict(refused, node_vendors)


class OwnershipCache:
    """The vendor of every device this sink has met (a registered device's vendor never changes)."""

    def __init__(self) -> None:
        self._vendors: dict[str, str] = {}

    def device_owners(self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]) -> dict[str, str]:
        """The registered vendor of every device of `snapshots` that has one (one query for those not met)."""
        unknown = sorted({d.device_uuid for s in snapshots for d in s.devices} - self._vendors.keys())
        if unknown:
            for uuid, vendor in conn.execute(
                "SELECT DISTINCT device_uuid, vendor_id FROM devices WHERE device_uuid = ANY(%s)", (unknown,)
            ).fetchall():
                self._vendors[uuid] = vendor
        return self._vendors

    def committed(self, snapshots: Sequence[NodeSnapshot]) -> None:
        """The devices of `snapshots` are now registered (their transaction committed)."""
        for snap in snapshots:
            for dev in snap.devices:
                self._vendors.setdefault(dev.device_uuid, dev.vendor)

    def forget(self) -> None:
        self._vendors.clear()
