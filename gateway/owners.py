"""What the gateway knows of who owns the nodes and devices a push names: the registrations read with
the one query of `kcloud.db.owners`, kept a while in a small bounded cache, so that a push of known
devices usually costs no query and never more than one.

Only what is registered to a vendor is cached (an owner never changes by telemetry once registered; an
operator's change is seen after `ttl_s` at most); what is not registered yet, and a node not bound to a
vendor yet, are asked again on the next push, since a worker may register or bind them at any moment.
The rule applied to it is `kcloud.ownership.check`, the ingest's. Imports `kcloud.db` and
`kcloud.ownership`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from kcloud.db.connect import Pool
from kcloud.db.owners import Registrations, read_registrations
from kcloud.ownership import NodeOwner

__all__ = ["OwnerCache"]

V = TypeVar("V")


class _TtlMap(Generic[V]):
    """At most `size` entries, each forgotten `ttl_s` after it was stored (oldest out first)."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float]) -> None:
        self._size = size
        self._ttl = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._items[key]
            return None
        return entry[1]

    def put(self, key: str, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = (self._clock() + self._ttl, value)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class OwnerCache:
    """The registrations the gateway has read: node owners and device owners, bounded, for `ttl_s`."""

    def __init__(self, size: int = 50_000, ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._nodes: _TtlMap[NodeOwner] = _TtlMap(size, ttl_s, clock)
        self._devices: _TtlMap[str] = _TtlMap(size, ttl_s, clock)
        self._lock = threading.Lock()

    def registrations(self, pool: Pool, node_ids: Collection[str], device_uuids: Collection[str]) -> Registrations:
        """The registrations of `node_ids` and `device_uuids` (blocking): one query on `pool` for those not
        cached. A database error propagates: the caller must not accept what it could not check."""
        found = Registrations()
        missing_nodes: set[str] = set()
        missing_devices: set[str] = set()
        with self._lock:
            for node_id in node_ids:
                node = self._nodes.get(node_id)
                if node is None:
                    missing_nodes.add(node_id)
                else:
                    found.nodes[node_id] = node
            for uuid in device_uuids:
                vendor = self._devices.get(uuid)
                if vendor is None:
                    missing_devices.add(uuid)
                else:
                    found.devices[uuid] = vendor
        if not missing_nodes and not missing_devices:
            return found
        with pool.connection() as conn:
            read = read_registrations(conn, missing_nodes, missing_devices)
        with self._lock:
            for node_id, node in read.nodes.items():
                if node.vendor_id is not None:
                    self._nodes.put(node_id, node)
            for uuid, vendor in read.devices.items():
                self._devices.put(uuid, vendor)
        found.nodes.update(read.nodes)
        found.devices.update(read.devices)
        return found
