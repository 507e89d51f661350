"""A simulated device's numbers at one instant, as pydantic records (`device_sample`) or straight as wire
JSON (`fast_entry` + `format_devices`), the latter without building a Python object per device.

Both paths compute the same integers from `DevStatic` and the `TickClock`: utilisation in per-mille,
power and temperature in tenths, memory in bytes, energy in whole joules, throughput in whole units.
The wire path writes them with preformatted tables and per-device JSON fragments in the field order and
number format of `NodeSnapshot.to_json_bytes()` (floats as their shortest repr, `exclude_none`); the
unit tests compare the two byte for byte. Devices that are degraded or failed always take the pydantic
path (they are a few per thousand).

Example:
    >>> parts = format_devices([fast_entry(dev, 0)], clock)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from json.encoder import encode_basestring as _js  # what the wire writes for a str (no ASCII escaping)
from typing import Any

from collectors.sim.catalog import DeviceProfile
from collectors.sim.layout import Allocation, DevStatic, pci_bus_id
from collectors.sim.load import NOISE_MASK, TickClock
from kcloud.records import Attribution, DeviceSample, Throughput

__all__ = ["ACTIVITY", "DEGRADED_XID", "FastEntry", "device_sample", "fast_entry", "format_devices"]

# TENTHS[i] is how the wire writes the float i / 10 (its shortest repr): utilisation, power, temperature
TENTHS = tuple(repr(i / 10) for i in range(20001))

# Engine activity of a usage class, per mille of the device's utilisation: (SM, tensor, DRAM, encoder,
# decoder). AI keeps the SMs and tensor pipes busy; video keeps the encoders and decoders busy with
# little SM and no tensor work; a model loaded and serving nothing holds memory with engines near 0.
# What a dcgm-exporter with profiling fields reports, so only NVIDIA devices carry them (the NPU
# exporters have no such counters: null).
ACTIVITY: tuple[tuple[int, int, int, int, int], ...] = (
    (780, 450, 620, 0, 0),  # INFER
    (930, 680, 520, 0, 0),  # TRAIN
    (120, 0, 180, 900, 950),  # TRANSCODE
    (40, 0, 25, 0, 0),  # IDLE_LOADED
    (0, 0, 0, 0, 0),  # IDLE_RESERVED
    (0, 0, 0, 0, 0),  # FREE
)
#: the health signals of a healthy simulated NVIDIA GPU, as the wire writes them
_HEALTH_OK = (
    ',"xid_last":0,"throttle_power":false,"throttle_thermal":false,"nvlink_errors":0,"mem_rows_retired":0,'
    '"mem_repair_pending":false,"mem_repair_failed":false'
)
#: XID of a degraded simulated GPU: 63, a row-remapping recording event (its ECC errors got rows remapped)
DEGRADED_XID = 63


def _activity(p: DeviceProfile, cls: int) -> tuple[int, int, int, int, int] | None:
    return ACTIVITY[cls] if p.vendor == "nvidia" else None


FastEntry = tuple[Any, ...]  # the flat per-device tuple unpacked by format_devices; built by fast_entry


@functools.lru_cache(maxsize=64)
def _profile_parts(p: DeviceProfile) -> tuple[str, str, str, str, str]:
    """(identity after the uuid, mid1, mid2, busy clock, idle clock) of a device model."""
    ident = f',"vendor":{_js(p.vendor)},"kind":{_js(p.kind)},"model":{_js(p.model)},"arch":{_js(p.arch)},'
    return (
        ident,
        f',"mem_total_bytes":{p.mem_total_bytes},"power_w":',
        f',"power_limit_w":{p.power_limit_w!r},"energy_j":',
        repr(float(p.clock_mhz_max)),
        repr(float(p.clock_mhz_idle)),
    )


@functools.lru_cache(maxsize=256)
def _slot_part(slot: int) -> str:
    return f'"index":{_js(str(slot))},"pci_bus_id":{_js(pci_bus_id(slot))},"util_pct":'


@functools.lru_cache(maxsize=65536)
def _tail(a: Allocation, serves: bool) -> str:
    """What follows the throughput value (or the ECC count, when nothing is served) up to the end."""
    if serves and a.workload is not None:
        return f',"unit":{_js(a.workload.unit)},"workload":{_js(a.workload.name)}}}{a.attribution_json()}}}'
    return f"{a.attribution_json()}}}"


def fast_entry(dev: DevStatic, slot: int, noise: tuple[tuple[int, ...], ...]) -> FastEntry:
    """The device's precomputed JSON fragments and integers, for sitting in `slot` of a node."""
    p, a = dev.profile, dev.alloc
    ident, mid1, mid2, clk_hi, clk_lo = _profile_parts(p)
    return (
        f'{{"device_uuid":{_js(dev.uuid)}{ident}{_slot_part(slot)}',
        a.cls,
        dev.base,
        noise[a.cls],
        dev.noise_offset,
        dev.mem0,
        dev.mem1,
        mid1,
        dev.idle10,
        dev.pslope,
        mid2,
        dev.e0,
        dev.idle10 / 10,
        dev.energy_coef,
        dev.temp10,
        dev.tslope,
        clk_hi,
        clk_lo,
        dev.tpk,
        _tail(a, dev.tpk >= 0),
        _activity(p, a.cls),
    )


def format_devices(entries: list[FastEntry] | tuple[FastEntry, ...], clock: TickClock) -> list[str]:
    """Wire JSON of healthy devices. Mirrors `_numbers` exactly; keep the two in step."""
    d1000, integral, since, phase = clock.d1000, clock.integral, clock.since_t0, clock.phase
    tenths = TENTHS
    out: list[str] = []
    append = out.append
    for (head, cls, base, noise, noff, mem0, mem1, mid1, idle10, pslope, mid2, e0, erate, ecoef,
         temp10, tslope, clk_hi, clk_lo, tpk, tail, act) in entries:  # fmt: skip
        u = base * d1000[cls] // 1000 + noise[(noff + phase) & NOISE_MASK]
        if u < 0:
            u = 0
        elif u > 1000:
            u = 1000
        energy = int(e0 + erate * since + ecoef * integral[cls])
        if act is None:
            counters = ""
        else:
            sm, tensor, dram, enc, dec = act
            counters = (
                f',"sm_active_pct":{tenths[sm * u // 1000]},"tensor_active_pct":{tenths[tensor * u // 1000]},'
                f'"dram_active_pct":{tenths[dram * u // 1000]},"enc_util_pct":{tenths[enc * u // 1000]},'
                f'"dec_util_pct":{tenths[dec * u // 1000]}{_HEALTH_OK}'
            )
        if tpk >= 0:
            append(
                f'{head}{tenths[u]},"mem_used_bytes":{mem0 + mem1 * u}{mid1}{tenths[idle10 + pslope * u // 1000]}'
                f'{mid2}{energy}.0,"temp_c":{tenths[temp10 + tslope * u // 1000]},"clock_mhz":'
                f'{clk_hi if u >= 50 else clk_lo},"health":"ok","ecc_uncorrected":0{counters},"throughput":{{"value":'
                f"{tpk * u // 1000}.0{tail}"
            )
        else:
            append(
                f'{head}{tenths[u]},"mem_used_bytes":{mem0 + mem1 * u}{mid1}{tenths[idle10 + pslope * u // 1000]}'
                f'{mid2}{energy}.0,"temp_c":{tenths[temp10 + tslope * u // 1000]},"clock_mhz":'
                f'{clk_hi if u >= 50 else clk_lo},"health":"ok","ecc_uncorrected":0{counters}{tail}'
            )
    return out


def _numbers(dev: DevStatic, clock: TickClock, noise: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
    """(utilisation per-mille, energy J): the same arithmetic as `format_devices`."""
    cls = dev.alloc.cls
    u = dev.base * clock.d1000[cls] // 1000 + noise[cls][(dev.noise_offset + clock.phase) & NOISE_MASK]
    u = min(max(u, 0), 1000)
    energy = int(dev.e0 + dev.idle10 / 10 * clock.since_t0 + dev.energy_coef * clock.integral[cls])
    return u, energy


def device_sample(
    dev: DevStatic, slot: int, clock: TickClock, noise: tuple[tuple[int, ...], ...], health: str = "ok"
) -> DeviceSample:
    """The validated record of `dev` sitting in `slot`, in health `ok`, `degraded` or `failed`.

    A degraded device is throttled (60 % of its load and throughput, 70 % clock, 12 °C hotter) and
    counts uncorrected ECC errors; a degraded NVIDIA GPU also reports thermal throttling, XID 63 and
    as many rows remapped (pending a reset). A failed one answers nothing but who it is and who holds it.
    """
    p, a = dev.profile, dev.alloc
    attribution = (
        Attribution(tenant=a.tenant, namespace=a.namespace, pod=a.pod, container=a.container)
        if a.tenant is not None
        else None
    )
    ident: dict[str, Any] = {
        "device_uuid": dev.uuid,
        "vendor": p.vendor,
        "kind": p.kind,
        "model": p.model,
        "arch": p.arch,
        "index": str(slot),
        "pci_bus_id": pci_bus_id(slot),
        "health": health,
        "attribution": attribution,
    }
    if health == "failed":
        return DeviceSample(**ident)
    u, energy = _numbers(dev, clock, noise)
    clock_mhz = float(p.clock_mhz_max if u >= 50 else p.clock_mhz_idle)
    temp10 = dev.temp10 + dev.tslope * u // 1000
    ecc = 0
    if health == "degraded":
        u = u * 6 // 10
        clock_mhz = float(p.clock_mhz_max * 7 // 10)
        temp10 = min(dev.temp10 + dev.tslope * u // 1000 + 120, 1000)
        ecc = 1 + dev.noise_offset % 3
    throughput = None
    if dev.tpk >= 0 and a.workload is not None:
        throughput = Throughput(value=float(dev.tpk * u // 1000), unit=a.workload.unit, workload=a.workload.name)
    counters: dict[str, Any] = {}
    act = _activity(p, a.cls)
    if act is not None:
        sm, tensor, dram, enc, dec = act
        counters = {
            "sm_active_pct": (sm * u // 1000) / 10,
            "tensor_active_pct": (tensor * u // 1000) / 10,
            "dram_active_pct": (dram * u // 1000) / 10,
            "enc_util_pct": (enc * u // 1000) / 10,
            "dec_util_pct": (dec * u // 1000) / 10,
            "xid_last": DEGRADED_XID if health == "degraded" else 0,
            "throttle_power": False,
            "throttle_thermal": health == "degraded",
            "nvlink_errors": 0,
            "mem_rows_retired": ecc,  # each uncorrected error of a degraded GPU got a row remapped
            "mem_repair_pending": health == "degraded",
            "mem_repair_failed": False,
        }
    return DeviceSample(
        **ident,
        util_pct=u / 10,
        mem_used_bytes=dev.mem0 + dev.mem1 * u,
        mem_total_bytes=p.mem_total_bytes,
        power_w=(dev.idle10 + dev.pslope * u // 1000) / 10,
        power_limit_w=p.power_limit_w,
        energy_j=float(energy),
        temp_c=temp10 / 10,
        clock_mhz=clock_mhz,
        ecc_uncorrected=ecc,
        throughput=throughput,
        **counters,
    )
