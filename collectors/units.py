"""Unit conversions and magnitude guards shared by the collectors' metric maps.

Each converter takes a vendor value (a float) and returns it in the canonical unit of
`kcloud/catalog.yaml`, or None when the value is a "blank" sentinel meaning the source has no reading.
Guards for vendors whose unit changed between releases decide by magnitude, because the exposition
text does not say which unit it uses.

Example:
    >>> MIB_TO_BYTES(1.0), RATIO_TO_PCT(0.425), furiosa_power_w(4795000.0), rbln_memory_bytes(15.71875)
    (1048576.0, 42.5, 4.795, 16877879296.0)
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "DCGM_FP64_BLANK",
    "DCGM_INT32_BLANK",
    "DCGM_INT64_BLANK",
    "FURIOSA_MICROWATT_ABOVE",
    "HZ_TO_MHZ",
    "MB_TO_BYTES",
    "MIB_TO_BYTES",
    "MICRO",
    "MILLI",
    "RATIO_TO_PCT",
    "RBLN_GIB_BELOW",
    "SAME",
    "THROTTLE_POWER_BITS",
    "THROTTLE_THERMAL_BITS",
    "Converter",
    "dcgm_counter",
    "dcgm_gauge",
    "dcgm_xid",
    "furiosa_power_w",
    "rbln_memory_bytes",
    "scale",
    "throttle_power",
    "throttle_thermal",
]

Converter = Callable[[float], float | None]

# DCGM's "blank" sentinels (dcgm_structs.h): values at or above them mean "no reading"; +1..+3 encode
# not found / not supported / no permission. Older dcgm-exporter builds print them instead of omitting.
DCGM_INT32_BLANK = 0x7FFFFFF0
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
DCGM_FP64_BLANK = 140737488355328.0  # 2**47

# FuriosaAI documents furiosa_npu_hw_power in W, but its exporter's own tests emit µW (4795000).
# No card draws 10 kW, so anything above is taken as µW.
FURIOSA_MICROWATT_ABOVE = 10_000.0
# Rebellions reported memory in GiB before Dec 2025 and in bytes after; no card has 1 MiB of DRAM.
RBLN_GIB_BELOW = float(2**20)


def scale(factor: float, name: str) -> Converter:
    """A converter that multiplies by `factor`; `name` is what it shows in reprs and docs."""

    def convert(value: float) -> float | None:
        return value * factor

    convert.__name__ = convert.__qualname__ = name
    return convert


SAME = scale(1.0, "same")
RATIO_TO_PCT = scale(100.0, "ratio_to_pct")  # 0-1 ratio -> percent
MIB_TO_BYTES = scale(float(2**20), "mib_to_bytes")
MB_TO_BYTES = scale(float(2**20), "mb_to_bytes")  # Ascend/AMD "MB" are MiB (64 GiB HBM reads 65536)
MILLI = scale(1e-3, "milli")  # mW -> W, mJ -> J
MICRO = scale(1e-6, "micro")  # µJ -> J, µW -> W
HZ_TO_MHZ = scale(1e-6, "hz_to_mhz")


def furiosa_power_w(value: float) -> float | None:
    """Furiosa power: W as documented, µW when above `FURIOSA_MICROWATT_ABOVE`."""
    return value / 1e6 if value > FURIOSA_MICROWATT_ABOVE else value


def rbln_memory_bytes(value: float) -> float | None:
    """Rebellions memory: GiB when below `RBLN_GIB_BELOW` (releases before Dec 2025), else bytes."""
    return value * 2**30 if value < RBLN_GIB_BELOW else value


def _dcgm_blank(value: float, int32: bool) -> bool:
    if value >= DCGM_FP64_BLANK:  # also every INT64 blank, which is far larger
        return True
    return int32 and value >= DCGM_INT32_BLANK


def dcgm_gauge(convert: Converter) -> Converter:
    """DCGM gauge: None for INT32/INT64/FP64 blanks, else `convert(value)`. Gauges never reach 2**31."""

    def guarded(value: float) -> float | None:
        return None if _dcgm_blank(value, int32=True) else convert(value)

    guarded.__name__ = guarded.__qualname__ = f"dcgm_gauge({getattr(convert, '__name__', 'convert')})"
    return guarded


def dcgm_counter(convert: Converter) -> Converter:
    """DCGM counter: None for INT64/FP64 blanks only; a counter may legitimately pass 2**31."""

    def guarded(value: float) -> float | None:
        return None if _dcgm_blank(value, int32=False) else convert(value)

    guarded.__name__ = guarded.__qualname__ = f"dcgm_counter({getattr(convert, '__name__', 'convert')})"
    return guarded


def dcgm_xid(value: float) -> float | None:
    """DCGM's last-XID field: blank until the first XID, so a blank means none seen (0), not no reading."""
    return 0.0 if _dcgm_blank(value, int32=True) else value


# Clock event (throttle) reasons, the bitmask NVML (nvmlDeviceGetCurrentClocksEventReasons), DCGM
# (DCGM_FI_DEV_CLOCKS_EVENT_REASONS, formerly _CLOCK_THROTTLE_REASONS) and nvidia-smi
# (clocks_throttle_reasons.active) share: 0x4 SW power cap, 0x8 HW slowdown (set together with one of
# the next two), 0x20 SW thermal slowdown, 0x40 HW thermal slowdown, 0x80 HW power-brake slowdown.
# Idle (0x1), application clocks (0x2), sync boost (0x10) and display clocks (0x100) are not throttling.
THROTTLE_POWER_BITS = 0x4 | 0x80
THROTTLE_THERMAL_BITS = 0x20 | 0x40


def _bits(mask: float, bits: int) -> float | None:
    if mask < 0 or not mask.is_integer() or _dcgm_blank(mask, int32=False):
        return None
    return 1.0 if int(mask) & bits else 0.0


def throttle_power(mask: float) -> float | None:
    """1.0 when a clock event reasons bitmask says power throttling, 0.0 when not, None for a blank."""
    return _bits(mask, THROTTLE_POWER_BITS)


def throttle_thermal(mask: float) -> float | None:
    """1.0 when a clock event reasons bitmask says thermal throttling, 0.0 when not, None for a blank."""
    return _bits(mask, THROTTLE_THERMAL_BITS)
