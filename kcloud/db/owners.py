"""Reading what is registered to whom: the one query, used by the vendor gateway (before it accepts a
push) and by the stream ingest (inside its write transaction), that feeds the rule of `kcloud.ownership`.

`read_registrations(conn, node_ids, device_uuids)` returns, in one statement, the site, vendor and newest
event time of the registered nodes among `node_ids` and the vendor of the registered devices among
`device_uuids`; what is not registered is absent. Imports psycopg and `kcloud.ownership`.

Example:
    >>> regs = read_registrations(conn, ["rngd-node-01"], ["a1b2c3d4-0000-4000-8000-000000000001"])  # doctest: +SKIP
    >>> regs.nodes["rngd-node-01"].vendor_id
    'furiosa'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from kcloud.ownership import NodeOwner

__all__ = ["Registrations", "read_registrations"]

_QUERY = (
    "SELECT 'node', node_id, site_id, vendor_id, last_seen FROM nodes WHERE node_id = ANY(%s) "
    "UNION ALL "
    "SELECT DISTINCT 'device', device_uuid, NULL::text, vendor_id, NULL::timestamptz FROM devices "
    "WHERE device_uuid = ANY(%s)"
)


@dataclass(frozen=True)
class Registrations:
    """The registered nodes (by node_id), their newest stored event time, and device owners (by uuid)."""

    nodes: dict[str, NodeOwner] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)


def read_registrations(
    conn: psycopg.Connection[Any], node_ids: Collection[str], device_uuids: Collection[str]
) -> Registrations:
    """What is registered of `node_ids` and `device_uuids` (one query; nothing asked, no query)."""
    regs = Registrations()
    if not node_ids and not device_uuids:
        return regs
    for kind, key, site_id, vendor_id, last_seen in conn.execute(
        _QUERY, (sorted(node_ids), sorted(device_uuids))
    ).fetchall():
        if kind == "node":
            regs.nodes[key] = NodeOwner(site_id, vendor_id)
            regs.last_seen[key] = last_seen
        else:
            regs.devices[key] = vendor_id
    return regs
