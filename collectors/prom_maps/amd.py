"""AMD device-metrics-exporter (github.com/ROCm/device-metrics-exporter) → canonical fields.

From its docs/configuration/metricslist.md: GFX_ACTIVITY (%, unpartitioned GPU), USED/TOTAL/FREE_VRAM
(MB, which are MiB), PACKAGE_POWER (W, MI3xx; not on guest VMs) with POWER_USAGE (W) as fallback,
JUNCTION_TEMPERATURE (°C, MI3xx hotspot) with EDGE_TEMPERATURE (MI2xx) as fallback, ENERGY_CONSUMED
(accumulated µJ), ECC_UNCORRECT_TOTAL. Exported names are the lower-case forms (`gpu_gfx_activity`).

Labels: `gpu_uuid`, `gpu_id` (index), `card_series` then `card_model` (model), `serial_number`,
`hostname`, `gpu_partition_id`; `namespace`/`pod`/`container` under Kubernetes.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import MB_TO_BYTES, MICRO, SAME

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    "gpu_gfx_activity": MetricSpec("util_pct", SAME),
    "gpu_used_vram": MetricSpec("mem_used_bytes", MB_TO_BYTES),
    "gpu_total_vram": MetricSpec("mem_total_bytes", MB_TO_BYTES),
    "gpu_free_vram": MetricSpec("_mem_free_bytes", MB_TO_BYTES),
    "gpu_package_power": MetricSpec("power_w", SAME),
    "gpu_power_usage": MetricSpec("power_w", SAME),
    "gpu_junction_temperature": MetricSpec("temp_c", SAME),
    "gpu_edge_temperature": MetricSpec("temp_c", SAME),
    "gpu_energy_consumed": MetricSpec("energy_j", MICRO),
    "gpu_ecc_uncorrect_total": MetricSpec("ecc_uncorrected", SAME),
}

IDENTITY = IdentityRules(
    uuid=("gpu_uuid",),
    index=("gpu_id",),
    model=("card_series", "card_model"),
)

EXPORTER = ExporterMap(
    name="amd",
    vendor="amd",
    kind="gpu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://github.com/ROCm/device-metrics-exporter/blob/main/docs/configuration/metricslist.md",
)
