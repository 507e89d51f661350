"""A simulated fleet: deterministic node snapshots (`source = "sim"`) for demos, tests and load.

The fleet is modelled on Korea's sovereign-AI compute programme (sites in `SITE_CATALOG`): K-Cloud NPU
farms (KT Cloud with Rebellions ATOM and REBEL, Naver Cloud with FuriosaAI RNGD and Warboy, NHN Cloud
with Sapeon X330), the national AI computing centre (B200, H200, H100 with some domestic NPUs) and
company GPU clusters. Nodes hold 8 devices of one model, in racks of four at one site.

What is synthetic (all of it): site names, operators and capacity shares; device figures (memory, power
limit, idle power, clocks, tokens/s; rounded from datasheets where public, invented otherwise); tenants
(ministries, public institutes, companies and universities of the kind named in the national GPU
allocation) and their workloads (named LLMs in tokens/s, CNN vision models in images/s on Warboy, and
non-AI video transcoding in streams, a third of it filed under LLM names by its tenant); engine counters
consistent with the true kind of work (SM and tensor activity for AI, encoder and decoder for video,
memory held with engines idle for a loaded model serving nothing; NVIDIA GPUs only, as on real
exporters) and the health signals of a healthy or degraded GPU; allocations that sit idle (reserved with
nothing scheduled, or a model loaded and serving 0 tokens/s); KST diurnal and weekly load; degraded and
failed devices; offline spells (`tick()` leaves the node out); relocations (two nodes swap a device for
some hours). Rates are above a real fleet's so that they show in a short demo (see
`collectors.sim.spells`).

Everything is a pure function of (seed, node, instant): replaying a tick gives the same bytes, and a
node's layout does not depend on the fleet size. `ground_truth()` (or the `dump_ground_truth()` sidecar)
says what really runs on each device, which the wire never carries. `tick_bytes()` is the fast path for
load (wire JSON without a pydantic object per device); it gives exactly `NodeSnapshot.to_json_bytes()`
of `tick()`.

Example:
    >>> fleet = SimulatedFleet(nodes=2, seed=7)
    >>> snaps = fleet.tick(datetime(2026, 11, 2, 5, tzinfo=UTC), seq=0)
    >>> len(snaps), len(snaps[0].devices)
    (2, 8)
    >>> fleet.tick_bytes(datetime(2026, 11, 2, 5, tzinfo=UTC), seq=0)[0][1] == snaps[0].to_json_bytes()
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, TypeAdapter

from collectors.sim.catalog import DEVICE_PROFILES, SITE_CATALOG, DeviceProfile, Site
from collectors.sim.layout import (
    RACK_SIZE,
    DevStatic,
    device_uuid,
    node_devices,
    rack_layout,
)
from collectors.sim.load import CLASS_NAMES, INFER, TRUE_KINDS, TickClock, clock_at, noise_tables
from collectors.sim.spells import Conditions, SpellBook
from collectors.sim.wire import FastEntry, device_sample, fast_entry, format_devices
from kcloud.records import SCHEMA_TAG, NodeRef, NodeSnapshot

__all__ = [
    "DEVICE_PROFILES",
    "GROUND_TRUTH_FORMAT",
    "SITES",
    "SITE_CATALOG",
    "TRUE_KINDS",
    "Conditions",
    "DeviceProfile",
    "GroundTruth",
    "SimulatedFleet",
    "Site",
]

SITES: tuple[str, ...] = tuple(s.site_id for s in SITE_CATALOG)
GROUND_TRUTH_FORMAT = "kcloud.sim-ground-truth/1"
_TIME = TypeAdapter(AwareDatetime)
_DEVS_CACHE = 8192


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What really runs on one simulated device, for measuring a classifier of AI use; never on the wire.

    `true_kind` is one of `TRUE_KINDS` (ai-training, ai-inference, video-transcode, idle-resident,
    idle); `labelled_kind` is what the device's labels (pod, container, workload) claim, which differs
    only for video work filed as LLM serving (`mislabelled`).
    """

    device_uuid: str
    node_id: str
    slot: int
    true_kind: str
    labelled_kind: str
    mislabelled: bool
    usage_class: str
    tenant: str | None

    def as_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class _Node:
    """What the fast path keeps per node: its key, the message head and one entry per device."""

    key: bytes
    head: str  # the message up to and including `"collected_at":`
    fast: tuple[FastEntry, ...]


class SimulatedFleet:
    """`nodes` simulated nodes of `devices_per_node` accelerators each, reproducible from `seed`."""

    def __init__(self, nodes: int, seed: int = 1, devices_per_node: int = 8, node_prefix: str = "sim") -> None:
        if nodes < 1 or devices_per_node < 1:
            raise ValueError("a simulated fleet needs at least one node and one device per node")
        self.nodes = nodes
        self.seed = seed
        self.devices_per_node = devices_per_node
        self.node_prefix = node_prefix
        self._noise = noise_tables(seed)
        self._static: list[_Node | None] = [None] * nodes
        self._spells = SpellBook(seed, nodes, devices_per_node, self.partner)
        self._instant: tuple[float, TickClock, Conditions] | None = None
        self._devs_cache: dict[int, tuple[DevStatic, ...]] = {}

    # -- layout ---------------------------------------------------------------------------------------
    def node_id(self, i: int) -> str:
        return f"{self.node_prefix}-{i:06d}"

    def device_uuid(self, node: int, dev: int) -> str:
        """The uuid of the device whose home is slot `dev` of node `node` (it may be relocated)."""
        return device_uuid(self.seed, self.node_prefix, node, dev)

    def site(self, i: int) -> Site:
        """The site node i stands at."""
        return rack_layout(self.seed, i // RACK_SIZE)[0]

    def profile(self, i: int) -> DeviceProfile:
        """The device model of node i."""
        return rack_layout(self.seed, i // RACK_SIZE)[1]

    def partner(self, i: int) -> int | None:
        """The node that node i swaps devices with during relocations (same model), if it exists."""
        rack = i // RACK_SIZE
        other = i ^ RACK_SIZE if rack_layout(self.seed, rack ^ 1)[1] == self.profile(i) else i ^ 1
        return other if other < self.nodes else None

    def _devs(self, i: int) -> tuple[DevStatic, ...]:
        """Node i's devices in their home slots (recomputed, with a small cache: the fast path keeps only
        its JSON fragments)."""
        devs = self._devs_cache.get(i)
        if devs is None:
            if len(self._devs_cache) >= _DEVS_CACHE:
                self._devs_cache.clear()
            devs = self._devs_cache[i] = node_devices(self.seed, self.node_prefix, i, self.devices_per_node)
        return devs

    def _node(self, i: int) -> _Node:
        node = self._static[i]
        if node is None:
            node_id = self.node_id(i)
            ref = {"node_id": node_id, "site_id": self.site(i).site_id, "hostname": self._hostname(i)}
            head = (
                f'{{"schema":{json.dumps(SCHEMA_TAG)},"node":{json.dumps(ref, separators=(",", ":"))},'
                f'"source":"sim","collected_at":'
            )
            fast = tuple(fast_entry(dev, slot, self._noise) for slot, dev in enumerate(self._devs(i)))
            node = _Node(node_id.encode(), head, fast)
            self._static[i] = node
        return node

    def prepare(self) -> None:
        """Build every node's JSON fragments now (otherwise the first `tick_bytes` does it, node by node)."""
        for i in range(self.nodes):
            self._node(i)

    def _hostname(self, i: int) -> str:
        return f"{self.node_id(i)}.sim.kcloud"

    # -- ground truth ---------------------------------------------------------------------------------
    def ground_truth(self) -> dict[str, GroundTruth]:
        """Every device's true kind of work, by device uuid (its home node and slot; a relocation moves
        the device, not its work). A pure function of (seed, fleet shape), like everything here."""
        truth: dict[str, GroundTruth] = {}
        for node in range(self.nodes):
            for slot, dev in enumerate(self._devs(node)):
                a = dev.alloc
                truth[dev.uuid] = GroundTruth(
                    device_uuid=dev.uuid,
                    node_id=self.node_id(node),
                    slot=slot,
                    true_kind=a.true_kind,
                    labelled_kind=TRUE_KINDS[INFER] if a.mislabelled else a.true_kind,
                    mislabelled=a.mislabelled,
                    usage_class=CLASS_NAMES[a.cls],
                    tenant=a.tenant,
                )
        return truth

    def dump_ground_truth(self, path: Path) -> Path:
        """Write `ground_truth()` as a JSON sidecar: the fleet's shape and one object per device."""
        doc = {
            "format": GROUND_TRUTH_FORMAT,
            "seed": self.seed,
            "nodes": self.nodes,
            "devices_per_node": self.devices_per_node,
            "node_prefix": self.node_prefix,
            "devices": [t.as_json() for t in self.ground_truth().values()],
        }
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        return path

    # -- time -----------------------------------------------------------------------------------------
    def _at(self, at: datetime) -> tuple[TickClock, Conditions]:
        if at.tzinfo is None:
            raise ValueError(f"simulator: tick time {at.isoformat()} has no time zone; pass an aware datetime")
        t = at.timestamp()
        if self._instant is None or self._instant[0] != t:
            self._instant = (t, clock_at(t), self._spells.conditions(t))
        return self._instant[1], self._instant[2]

    def conditions(self, at: datetime) -> Conditions:
        """What is out of the ordinary at `at`: offline nodes, unhealthy and relocated devices."""
        return self._at(at)[1]

    def online(self, node: int, at: datetime) -> bool:
        """Whether node `node` sends a snapshot at `at` (`tick()` leaves offline nodes out)."""
        return node not in self._at(at)[1].offline

    # -- snapshots ------------------------------------------------------------------------------------
    def _occupants(self, node: int, cond: Conditions) -> list[DevStatic]:
        """The devices sitting in node's slots now (relocated ones included)."""
        own = self._devs(node)
        homes = [cond.moved.get((node, slot)) for slot in range(self.devices_per_node)]
        return [self._devs(h[0])[h[1]] if h else own[slot] for slot, h in enumerate(homes)]

    def snapshot(self, node: int, at: datetime, seq: int) -> NodeSnapshot:
        """The snapshot node `node` sends at `at` (its `seq`-th tick); built even while it is offline."""
        if not 0 <= node < self.nodes:
            raise IndexError(f"simulator: node {node} is outside this fleet of {self.nodes} nodes")
        clock, cond = self._at(at)
        devices = [
            device_sample(dev, slot, clock, self._noise, cond.health.get((dev.home_node, dev.home_slot), "ok"))
            for slot, dev in enumerate(self._occupants(node, cond))
        ]
        return NodeSnapshot(
            node=NodeRef(node_id=self.node_id(node), site_id=self.site(node).site_id, hostname=self._hostname(node)),
            source="sim",
            collected_at=at.astimezone(UTC),
            seq=seq,
            devices=devices,
        )

    def tick(self, at: datetime, seq: int) -> list[NodeSnapshot]:
        """The snapshot of every node that is online at `at`."""
        offline = self._at(at)[1].offline
        return [self.snapshot(n, at, seq) for n in range(self.nodes) if n not in offline]

    def tick_bytes(self, at: datetime, seq: int) -> list[tuple[bytes, bytes]]:
        """(key, value) for every node online at `at`: key = node_id, value = the wire JSON, identical to
        `snapshot(...).to_json_bytes()`, built from precomputed fragments without pydantic objects."""
        return list(self.iter_tick_bytes(at, seq))

    def iter_tick_bytes(
        self, at: datetime, seq: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """`tick_bytes` one node at a time, for nodes [start, stop): a producer can send while it builds."""
        if seq < 0:
            raise ValueError(f"simulator: seq must be >= 0, got {seq}")
        clock, cond = self._at(at)
        tail = f'{_TIME.dump_json(at.astimezone(UTC)).decode()},"seq":{int(seq)},"devices":['
        offline, special = cond.offline, cond.special
        for n in range(start, self.nodes if stop is None else min(stop, self.nodes)):
            if n in offline:
                continue
            node = self._static[n] or self._node(n)
            parts = self._special_devices(n, clock, cond) if n in special else format_devices(node.fast, clock)
            yield node.key, f"{node.head}{tail}{','.join(parts)}]}}".encode()

    def _special_devices(self, node: int, clock: TickClock, cond: Conditions) -> list[str]:
        parts: list[str] = []
        for slot, dev in enumerate(self._occupants(node, cond)):
            health = cond.health.get((dev.home_node, dev.home_slot))
            if health is not None:
                sample = device_sample(dev, slot, clock, self._noise, health)
                parts.append(sample.model_dump_json(exclude_none=True))
            elif (dev.home_node, dev.home_slot) == (node, slot):
                parts.extend(format_devices((self._node(node).fast[slot],), clock))
            else:
                parts.extend(format_devices((fast_entry(dev, slot, self._noise),), clock))
        return parts
