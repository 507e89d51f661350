"""Who owns what the telemetry names, at the ingest: the rule itself is `kcloud.ownership` (shared with
the vendor gateway, re-exported here), and `OwnershipCache` keeps the device owners read so that a batch
of known devices costs no device lookup (a device's vendor never changes once registered).

`OwnershipCache.read` reads, in the one query of `kcloud.db.owners`, the registered nodes of a batch and
the owners of its devices not met yet. Imports `kcloud.ownership`, `kcloud.db.owners`, `kcloud.records`
and psycopg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from kcloud.db.owners import Registrations, read_registrations
from kcloud.ownership import (
    DEVICE_OTHER_VENDOR,
    NODE_OTHER_SITE,
    NODE_OTHER_VENDOR,
    NodeOwner,
    Verdict,
    check,
    snapshot_vendor,
)
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


class OwnershipCache:
    """The vendor of every device this sink has met (a registered device's vendor never changes)."""

    def __init__(self) -> None:
        self._vendors: dict[str, str] = {}

    def read(self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]) -> Registrations:
        """The registered nodes of `snapshots` and the registered vendor of every device of them that has
        one (one query; the devices met before are not asked again)."""
        nodes = {s.node.node_id for s in snapshots}
        unknown = {d.device_uuid for s in snapshots for d in s.devices} - self._vendors.keys()
        regs = read_registrations(conn, nodes, unknown)
        self._vendors.update(regs.devices)
        return Registrations(regs.nodes, regs.last_seen, self._vendors)

    def committed(self, snapshots: Sequence[NodeSnapshot]) -> None:
        """The devices of `snapshots` are now registered (their transaction committed)."""
        for snap in snapshots:
            for dev in snap.devices:
                self._vendors.setdefault(dev.device_uuid, dev.vendor)

    def forget(self) -> None:
        self._vendors.clear()
