"""Intel Gaudi Prometheus metric exporter (vault.habana.ai/gaudi-metric-exporter) → canonical fields.

`habanalabs_*` gauges, one series per device: utilization (%), power_mW and power_default_limit_mW
(mW → W), temperature_onchip (°C), memory_used_bytes / memory_total_bytes, clock_soc_mhz.
`habanalabs_energy` is exported too, but its unit is not documented, so it is left unmapped.

Labels (the exporter's `getMetricLabels`): `Serial`, `UUID`, `device` (the serial again), `id`
(index), `fit`, `spi`, `driver`, `pod_namespace`, `pod_name`. No label names the model.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import MILLI, SAME

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    "habanalabs_utilization": MetricSpec("util_pct", SAME),
    "habanalabs_memory_used_bytes": MetricSpec("mem_used_bytes", SAME),
    "habanalabs_memory_total_bytes": MetricSpec("mem_total_bytes", SAME),
    "habanalabs_power_mW": MetricSpec("power_w", MILLI),
    "habanalabs_power_default_limit_mW": MetricSpec("power_limit_w", MILLI),
    "habanalabs_temperature_onchip": MetricSpec("temp_c", SAME),
    "habanalabs_clock_soc_mhz": MetricSpec("clock_mhz", SAME),
}

IDENTITY = IdentityRules(
    uuid=("UUID",),
    index=("id",),
    namespace=("pod_namespace",),
    pod=("pod_name",),
    container=(),
)

EXPORTER = ExporterMap(
    name="gaudi",
    vendor="intel",
    kind="npu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://docs.habana.ai/en/latest/Orchestration/Prometheus_Metric_Exporter.html",
)
