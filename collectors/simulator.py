"""A simulated fleet: deterministic node snapshots for demos, tests and benchmarks.

The fleet mixes NVIDIA GPUs with domestic NPUs (FuriosaAI RNGD, Rebellions ATOM) across the K-Cloud
sites. Values are synthetic, and say so (`source = "sim"`); they are a pure function of
(seed, node, tick), so the same run can be replayed and checked sample for sample.

Example:
    >>> fleet = SimulatedFleet(nodes=2, seed=7)
    >>> snaps = fleet.tick(datetime(2026, 11, 1, tzinfo=UTC), seq=0)
    >>> len(snaps), len(snaps[0].devices)
    (2, 8)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from kcloud.records import Attribution, DeviceSample, NodeRef, NodeSnapshot, Throughput

__all__ = ["DEVICE_PROFILES", "SITES", "SimulatedFleet"]

SITES = ("kt-cheonan", "naver-chuncheon", "nhn-gwangju", "nipa-gwangju-aidc")


@dataclass(frozen=True)
class _Profile:
    vendor: str
    kind: str
    model: str
    arch: str
    mem_total_bytes: int
    power_limit_w: float
    idle_w: float
    tokens_per_s_at_full: float


DEVICE_PROFILES: tuple[_Profile, ...] = (
    _Profile("nvidia", "gpu", "H100 80GB HBM3", "hopper", 80 * 2**30, 700.0, 70.0, 3000.0),
    _Profile("furiosa", "npu", "RNGD", "tcp", 48 * 2**30, 180.0, 35.0, 1500.0),
    _Profile("rebellions", "npu", "ATOM", "atom", 16 * 2**30, 150.0, 30.0, 1100.0),
)
_TENANTS = ("kisti", "snu-ai", "upstage", "lg-exaone", "naver-hyperclova")


def _unit(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the seed and parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SimulatedFleet:
    """`nodes` nodes of 8 accelerators each; node i's devices all share one profile."""

    def __init__(
        self, nodes: int, seed: int = 1, devices_per_node: int = 8, node_prefix: str = "sim"
    ) -> None:
        if nodes < 1 or devices_per_node < 1:
            raise ValueError("a simulated fleet needs at least one node and one device per node")
        self.nodes = nodes
        self.seed = seed
        self.devices_per_node = devices_per_node
        self.node_prefix = node_prefix

    def node_id(self, i: int) -> str:
        return f"{self.node_prefix}-{i:06d}"

    def profile(self, i: int) -> _Profile:
        return DEVICE_PROFILES[i % len(DEVICE_PROFILES)]

    def device_uuid(self, node: int, dev: int) -> str:
        h = hashlib.blake2b(
            f"{self.seed}/{self.node_prefix}/{node}/{dev}".encode(), digest_size=16
        ).hexdigest()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def snapshot(self, node: int, at: datetime, seq: int) -> NodeSnapshot:
        """The snapshot node `node` sends at time `at` (its `seq`-th tick)."""
        prof = self.profile(node)
        minute = int(at.timestamp() // 60)
        devices = []
        for d in range(self.devices_per_node):
            busy = _unit(self.seed, node, d, "busy") < 0.7
            wave = 0.5 + 0.5 * math.sin(at.timestamp() / 600 + d)
            util = round((55 + 40 * wave) if busy else 3 * _unit(self.seed, node, d, minute), 1)
            power = round(prof.idle_w + (prof.power_limit_w - prof.idle_w) * util / 100 * 0.9, 1)
            devices.append(
                DeviceSample(
                    device_uuid=self.device_uuid(node, d),
                    vendor=prof.vendor,
                    kind=prof.kind,
                    model=prof.model,
                    arch=prof.arch,
                    index=str(d),
                    pci_bus_id=f"0000:{0x18 + d:02x}:00.0",
                    util_pct=util,
                    mem_used_bytes=int(prof.mem_total_bytes * (0.1 + 0.8 * util / 100)),
                    mem_total_bytes=prof.mem_total_bytes,
                    power_w=power,
                    power_limit_w=prof.power_limit_w,
                    energy_j=round(power * at.timestamp() / 1000, 3),
                    temp_c=round(30 + util * 0.45, 1),
                    clock_mhz=1980.0 if prof.kind == "gpu" else 1000.0,
                    health="ok",
                    ecc_uncorrected=0,
                    throughput=Throughput(
                        value=round(prof.tokens_per_s_at_full * util / 100, 1),
                        unit="tokens/s",
                        workload="llama-3.1-8b-instruct",
                    )
                    if busy
                    else None,
                    attribution=Attribution(tenant=_TENANTS[(node + d) % len(_TENANTS)]) if busy else None,
                )
            )
        return NodeSnapshot(
            node=NodeRef(
                node_id=self.node_id(node),
                site_id=SITES[node % len(SITES)],
                hostname=f"{self.node_id(node)}.sim.kcloud",
            ),
            source="sim",
            collected_at=at.astimezone(UTC),
            seq=seq,
            devices=devices,
        )

    def tick(self, at: datetime, seq: int) -> list[NodeSnapshot]:
        """Every node's snapshot for one tick."""
        return [self.snapshot(n, at, seq) for n in range(self.nodes)]
