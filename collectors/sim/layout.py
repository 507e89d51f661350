"""Where each simulated node stands and what its devices do: the static half of the fleet.

Nodes come in racks of four that share a site and a device model (`rack_layout`); each node is split into
one, two or eight allocations (`allocations`), each of a usage class, tenant and workload; each device
gets a fixed load level, noise phase, memory footprint and energy-counter origin (`DevStatic`). A node's
layout depends only on (seed, node index), never on the size of the fleet, except that a relocation
partner must exist in it (`partner`). All synthetic.

Example:
    >>> site, profile = rack_layout(seed=1, rack=0)
    >>> site.site_id in {s.site_id for s in SITE_CATALOG}
    True
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring as _js
from typing import NamedTuple

from collectors.sim.catalog import (
    OPEN_MODELS,
    PROFILES_BY_KEY,
    SITE_CATALOG,
    TENANT_MODELS,
    VISION_MODELS,
    WORKLOADS,
    DeviceProfile,
    Site,
    Workload,
)
from collectors.sim.load import (
    FREE,
    IDLE_LOADED,
    IDLE_RESERVED,
    INFER,
    NOISE_MASK,
    TRAIN,
    TRANSCODE,
    TRUE_KINDS,
)
from collectors.sim.rand import key_rng, pick, units, weighted

__all__ = [
    "RACK_SIZE",
    "Allocation",
    "DevStatic",
    "allocations",
    "device_uuid",
    "node_devices",
    "pci_bus_id",
    "rack_layout",
]

RACK_SIZE = 4
_SITE_WEIGHTS = tuple((s, s.weight) for s in SITE_CATALOG)

# usage-class weights (INFER, TRAIN, TRANSCODE, IDLE_LOADED, IDLE_RESERVED, FREE) by device kind and programme
_CLASS_WEIGHTS: dict[tuple[str, str], tuple[float, ...]] = {
    ("npu", "K-Cloud"): (0.70, 0.0, 0.0, 0.07, 0.09, 0.14),
    ("npu", "national-ai-computing-centre"): (0.68, 0.0, 0.0, 0.08, 0.10, 0.14),
    ("npu", "private"): (0.75, 0.0, 0.0, 0.06, 0.07, 0.12),
    ("gpu", "K-Cloud"): (0.60, 0.0, 0.05, 0.07, 0.10, 0.18),
    ("gpu", "national-ai-computing-centre"): (0.45, 0.25, 0.06, 0.06, 0.07, 0.11),
    ("gpu", "private"): (0.50, 0.30, 0.06, 0.04, 0.03, 0.07),
}
_CLASS_CHOICES = {key: tuple(enumerate(weights)) for key, weights in _CLASS_WEIGHTS.items()}
_PROJECTS = (
    ("chat", "rag", "assistant", "search", "translate", "public-service"),
    ("sft", "pretrain", "eval"),
    ("vod", "live"),
    ("pilot", "poc", "chat", "rag"),
    ("pilot", "poc", "reserved"),
)
_SERVER = {"nvidia": "vllm", "furiosa": "furiosa-llm", "rebellions": "vllm-rbln", "sapeon": "sapeon-serve"}
_EFFICIENCY = (0.85, 0.95, 0.45, 0.03, 0.0, 0.0)  # share of (limit - idle) drawn at full utilisation
_MISLABEL_ONE_IN = 3  # one video allocation in three is labelled as LLM serving (by its 64-bit tag)
_TRAIN_TOKENS = 0.3  # training tokens/s relative to serving


def device_uuid(seed: int, prefix: str, node: int, slot: int) -> str:
    """The simulated device's canonical uuid (lower-case hex, 8-4-4-4-12)."""
    h = hashlib.blake2b(f"{seed}/{prefix}/{node}/{slot}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pci_bus_id(slot: int) -> str:
    return f"0000:{0x18 + slot:02x}:00.0"


@functools.lru_cache(maxsize=4096)
def rack_layout(seed: int, rack: int) -> tuple[Site, DeviceProfile]:
    """The site and device model of every node in rack `rack`."""
    u = units(seed, "rack", rack)
    site = weighted(_SITE_WEIGHTS, u[0])
    return site, PROFILES_BY_KEY[weighted(site.mix, u[1])]


@dataclass(frozen=True)
class Allocation:
    """Who a device is allocated to and what runs on it. `cls` is a usage class of `collectors.sim.load`."""

    cls: int
    tenant: str | None = None
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    workload: Workload | None = None
    tokens_factor: float = 0.0  # throughput at full load ÷ the profile's 8B-class tokens/s
    mislabelled: bool = False  # video work whose pod, container and workload say LLM serving

    @property
    def true_kind(self) -> str:
        """What really runs on the device (`collectors.sim.load.TRUE_KINDS`), whatever its labels say."""
        return TRUE_KINDS[self.cls]

    def attribution_json(self) -> str:
        """`,"attribution":{...}` as the wire writes it, or "" when the device is not allocated."""
        fields = [
            f'"{name}":{_js(value)}'
            for name, value in (
                ("tenant", self.tenant),
                ("namespace", self.namespace),
                ("pod", self.pod),
                ("container", self.container),
            )
            if value is not None
        ]
        return ',"attribution":{' + ",".join(fields) + "}" if fields else ""


_FREE = Allocation(FREE)


def _allocation(draw: Callable[[], float], tag: int, node_unit: str, site: Site, profile: DeviceProfile) -> Allocation:
    u = (draw(), draw(), draw(), draw())
    cls = weighted(_CLASS_CHOICES[(profile.kind, site.programme)], u[0])
    if cls == TRANSCODE and not (profile.video and site.video_tenants):
        cls = INFER
    if cls == FREE:
        return _FREE
    tenant = pick(site.video_tenants, u[1]) if cls == TRANSCODE else pick(site.tenants, u[1])
    if cls == TRANSCODE:
        workload = WORKLOADS["video-transcode"]
    elif profile.vision_only:
        workload = WORKLOADS[pick(VISION_MODELS, u[2])]
    else:
        workload = WORKLOADS[TENANT_MODELS.get(tenant) or pick(OPEN_MODELS, u[2])]
    project = pick(_PROJECTS[cls], u[3])
    namespace = f"{tenant}-{project}"
    if cls == IDLE_RESERVED:  # allocated, nothing scheduled on it
        return Allocation(cls, tenant, namespace)
    hexa = f"{tag:016x}"
    stem = workload.name.replace(".", "-")
    if cls == TRAIN:
        pod, container = f"{stem}-{project}-worker-{node_unit}", "trainer"
        factor = workload.factor * _TRAIN_TOKENS
    elif cls == TRANSCODE and tag % _MISLABEL_ONE_IN == 0:
        # a tenant that files video work as LLM serving (an AI allocation): every label says AI, the
        # engine counters say video; it reports "tokens/s" that are really its ~36 streams
        llm = WORKLOADS[TENANT_MODELS.get(tenant) or pick(OPEN_MODELS, u[2])]
        stem = llm.name.replace(".", "-")
        pod, container = f"{stem}-{hexa[:10]}-{hexa[10:15]}", _SERVER[profile.vendor]
        namespace = f"{tenant}-{pick(_PROJECTS[INFER], u[3])}"
        factor = 36.0 / profile.tokens_per_s_at_full
        return Allocation(cls, tenant, namespace, pod, container, llm, factor, mislabelled=True)
    elif cls == TRANSCODE:
        pod, container = f"transcoder-{hexa[:10]}-{hexa[10:15]}", "ffmpeg-nvenc"
        factor = 36.0 / profile.tokens_per_s_at_full  # ~36 1080p streams per GPU at full load
    else:
        pod = f"{stem}-{hexa[:10]}-{hexa[10:15]}"
        container = "triton" if profile.vision_only and profile.vendor == "nvidia" else _SERVER[profile.vendor]
        factor = workload.factor
    return Allocation(cls, tenant, namespace, pod, container, workload, factor)


def allocations(rng: random.Random, node: int, devices: int, site: Site, profile: DeviceProfile) -> list[Allocation]:
    """One allocation per device slot: whole node (60 %), two halves (25 %) or per device (15 %)."""
    split = rng.random()
    count = 1 if split < 0.60 or devices == 1 else 2 if split < 0.85 else devices
    units_ = [_allocation(rng.random, rng.getrandbits(64), f"{node}-{unit}", site, profile) for unit in range(count)]
    size = -(-devices // count)
    return [units_[slot // size] for slot in range(devices)]


class DevStatic(NamedTuple):
    """Everything fixed about one simulated device; the per-tick numbers derive from it and the clock."""

    uuid: str
    home_node: int
    home_slot: int
    profile: DeviceProfile
    alloc: Allocation
    base: int  # per-mille utilisation at curve value 1
    noise_offset: int
    mem0: int  # bytes used at zero utilisation
    mem1: int  # extra bytes per per-mille of utilisation
    idle10: int  # idle power, tenths of W
    pslope: int  # extra tenths of W at full utilisation
    temp10: int  # idle temperature, tenths of °C
    tslope: int  # extra tenths of °C at full utilisation
    e0: float  # energy counter at T0, J
    tpk: int  # throughput at full utilisation in its unit; -1 where nothing is served

    @property
    def energy_coef(self) -> float:
        """Joules per second of curve value: (pslope / 10 W) x base / 1000."""
        return self.pslope / 10 * self.base / 1000


def _device(
    draw: Callable[[], float], uuid: str, *, node: int, slot: int, profile: DeviceProfile, alloc: Allocation
) -> DevStatic:
    cls, total = alloc.cls, profile.mem_total_bytes
    u0, u1, u2, u3, u4 = draw(), draw(), draw(), draw(), draw()
    if cls in (INFER, IDLE_LOADED):
        base = 600 + int(350 * u0) if cls == INFER else 0
        mem0, mem1 = int(total * (0.86 + 0.04 * u1)), int(total * 0.03) // 1000
    elif cls == TRAIN:
        base, mem0, mem1 = 880 + int(100 * u0), int(total * (0.70 + 0.20 * u1)), int(total * 0.04) // 1000
    elif cls == TRANSCODE:
        base, mem0, mem1 = 350 + int(350 * u0), int(total * 0.02), int(total * 0.10) // 1000
    else:
        base, mem0, mem1 = 0, int(total * 0.005), 0
    if alloc.workload is None:
        tpk = -1
    elif cls == IDLE_LOADED:
        tpk = 0
    else:
        tpk = round(profile.tokens_per_s_at_full * alloc.tokens_factor)
    return DevStatic(
        uuid,
        node,
        slot,
        profile,
        alloc,
        base,
        int(u2 * (NOISE_MASK + 1)),
        mem0,
        mem1,
        round(profile.idle_w * 10),
        round((profile.power_limit_w - profile.idle_w) * _EFFICIENCY[cls] * 10),
        profile.temp_idle_c * 10 + int(40 * u3) - 20,
        (profile.temp_full_c - profile.temp_idle_c) * 10,
        float(int(3e9 * u4)),
        tpk,
    )


def node_devices(seed: int, prefix: str, node: int, devices: int) -> tuple[DevStatic, ...]:
    """Node `node`'s devices in their home slots: allocations and per-device figures, all drawn from one
    generator seeded by (seed, node); uuids from `device_uuid`."""
    site, profile = rack_layout(seed, node // RACK_SIZE)
    rng = key_rng(seed, "node", node)
    allocs = allocations(rng, node, devices, site, profile)
    return tuple(
        _device(rng.random, device_uuid(seed, prefix, node, slot), node=node, slot=slot, profile=profile, alloc=alloc)
        for slot, alloc in enumerate(allocs)
    )
