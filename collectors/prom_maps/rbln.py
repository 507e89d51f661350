"""Rebellions rbln-metrics-exporter (github.com/rebellions-sw/rbln-metrics-exporter) → canonical fields.

Two generations of names, both mapped: the old `RBLN_DEVICE_STATUS:<FIELD>` gauges (memory in GiB,
e.g. DRAM_TOTAL 15.71875) and the newer `rbln_npu_*` gauges (memory in bytes, e.g. 16877882368).
The memory guard takes values below 2**20 as GiB, so either generation reads right. Health: 0 means
healthy ("active"), 1 means the device is inactive, which is reported as failed.

Labels: `uuid`, `name` (`rbln0` → index 0), `card` (model, e.g. `RBLN-CA25`), `deviceID` (PCI device
id, not a bus id: ignored), `namespace`/`pod`/`container` under Kubernetes.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, Health, IdentityRules, MetricSpec
from collectors.units import SAME, rbln_memory_bytes

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

_HEALTH: dict[int, Health] = {0: "ok", 1: "failed"}

METRIC_MAP: dict[str, MetricSpec] = {
    # names of releases from Dec 2025 on
    "rbln_npu_utilization": MetricSpec("util_pct", SAME),
    "rbln_npu_memory_used": MetricSpec("mem_used_bytes", rbln_memory_bytes),
    "rbln_npu_memory_total": MetricSpec("mem_total_bytes", rbln_memory_bytes),
    "rbln_npu_power": MetricSpec("power_w", SAME),
    "rbln_npu_temperature": MetricSpec("temp_c", SAME),
    "rbln_npu_health": MetricSpec("health", states=_HEALTH),
    # names of earlier releases
    "RBLN_DEVICE_STATUS:UTILIZATION": MetricSpec("util_pct", SAME),
    "RBLN_DEVICE_STATUS:DRAM_USED": MetricSpec("mem_used_bytes", rbln_memory_bytes),
    "RBLN_DEVICE_STATUS:DRAM_TOTAL": MetricSpec("mem_total_bytes", rbln_memory_bytes),
    "RBLN_DEVICE_STATUS:CARD_POWER": MetricSpec("power_w", SAME),
    "RBLN_DEVICE_STATUS:TEMPERATURE": MetricSpec("temp_c", SAME),
    "RBLN_DEVICE_STATUS:HEALTH": MetricSpec("health", states=_HEALTH),
}

IDENTITY = IdentityRules(uuid=("uuid",), index=("name",), model=("card",))

EXPORTER = ExporterMap(
    name="rbln",
    vendor="rebellions",
    kind="npu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://github.com/rebellions-sw/rbln-metrics-exporter#metrics-reference",
)
