"""The declarative shape of an exporter map: vendor metric → canonical field, unit, identity labels.

An `ExporterMap` is data, not code: `collectors/prom.py` reads it to turn one exporter's exposition
text into `DeviceSample`s. Order in `metric_map` is priority: when two vendor metrics fill the same
canonical field of the same device, the one listed first wins and the other is counted as shadowed.

Example:
    >>> MetricSpec("power_w").field
    'power_w'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from collectors.units import SAME, Converter
from kcloud.records import DeviceSample

__all__ = ["AUX_FIELDS", "ExporterMap", "Health", "IdentityRules", "MetricSpec"]

Health = Literal["ok", "degraded", "failed", "unknown"]
Aggregate = Literal["first", "mean", "sum"]

# Helper fields a map may fill that are not on the wire: used to derive mem_total_bytes when an
# exporter reports used + free (+ reserved) instead of total, then discarded.
AUX_FIELDS = frozenset({"_mem_free_bytes", "_mem_reserved_bytes"})


@dataclass(frozen=True)
class MetricSpec:
    """How one vendor metric becomes one canonical field.

    field: a `DeviceSample` field (or an `AUX_FIELDS` helper).
    convert: vendor unit → canonical unit, None for a blank sentinel (see `collectors.units`).
    where: label values a sample must carry to count (e.g. Furiosa `label="peak"`).
    aggregate: "first" keeps the first series of a device; "mean" averages all its series (per-core);
        "sum" adds up the first series of every "sum" metric of that field (NVLink error kinds,
        retired-page and remapped-row causes), so that a field is the total of the parts reported.
    states: for `health`, vendor value → state; a value not listed becomes "unknown" and is counted.
    per_device: the value belongs to the whole device even on a MIG/partition series.
    also: further (field, converter) pairs filled from the same series (one throttle-reasons bitmask
        gives both `throttle_power` and `throttle_thermal`).
    """

    field: str
    convert: Converter = SAME
    where: Mapping[str, str] = dataclasses.field(default_factory=dict)
    aggregate: Aggregate = "first"
    states: Mapping[int, Health] | None = None
    per_device: bool = False
    also: tuple[tuple[str, Converter], ...] = ()

    def __post_init__(self) -> None:
        for name in (self.field, *(f for f, _ in self.also)):
            if name not in DeviceSample.model_fields and name not in AUX_FIELDS:
                raise ValueError(f"MetricSpec field {name!r} is not a DeviceSample field")
        if (self.field == "health") != (self.states is not None):
            raise ValueError("MetricSpec: `states` is required for health and only for health")


@dataclass(frozen=True)
class IdentityRules:
    """Which labels identify a device; each tuple lists label names tried in order.

    subdevice: (label, template) pairs; the first label present and non-empty names the slice, e.g.
    ("GPU_I_ID", "mig:gi{}") for a DCGM MIG instance. index values keep their trailing digits only
    (`npu0` → `0`).
    """

    uuid: tuple[str, ...]
    index: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    arch: tuple[str, ...] = ()
    pci_bus_id: tuple[str, ...] = ()
    subdevice: tuple[tuple[str, str], ...] = ()
    namespace: tuple[str, ...] = ("namespace",)
    pod: tuple[str, ...] = ("pod",)
    container: tuple[str, ...] = ("container",)


@dataclass(frozen=True)
class ExporterMap:
    """One Prometheus exporter: its vendor and kind, its metric map and its identity labels.

    info_metrics: metrics whose value is meaningless (constant 1) but whose labels describe the device
    (e.g. `nvidia_smi_gpu_info{name=...,pci_bus_id=...}`); they fill identity, never a measurement.
    """

    name: str
    vendor: str
    kind: Literal["gpu", "npu"]
    metric_map: Mapping[str, MetricSpec]
    identity: IdentityRules
    info_metrics: frozenset[str] = frozenset()
    docs: str = ""
