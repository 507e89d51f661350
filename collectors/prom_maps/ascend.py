"""Huawei Ascend npu-exporter (gitee/github Ascend/ascend-npu-exporter, MindCluster) → canonical fields.

`npu_chip_info_*` gauges, one series per chip: utilization (AI Core, %), power (W), temperature (°C),
HBM used/total (MB, which are MiB: a 64 GiB chip reads 65536), DDR used/total (MB; the only memory of
310P parts, so a fallback after HBM), health_status (1 = healthy, 0 = unhealthy). Samples carry
millisecond timestamps, which the parser accepts and the collector ignores (event time is the
collector's own tick).

Labels (its `CardLabel`): `id` (index), `model_name`, `vdie_id` (chip UUID), `pcie_bus_info`,
`namespace`, `pod_name`, `container_name`; a vNPU series also carries `v_dev_id` (its slice). Exporters
older than v5 label chips by `id` only: with no UUID their samples are dropped and counted.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import MB_TO_BYTES, SAME

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    "npu_chip_info_utilization": MetricSpec("util_pct", SAME),
    "npu_chip_info_hbm_used_memory": MetricSpec("mem_used_bytes", MB_TO_BYTES),
    "npu_chip_info_hbm_total_memory": MetricSpec("mem_total_bytes", MB_TO_BYTES),
    "npu_chip_info_used_memory": MetricSpec("mem_used_bytes", MB_TO_BYTES),
    "npu_chip_info_total_memory": MetricSpec("mem_total_bytes", MB_TO_BYTES),
    "npu_chip_info_power": MetricSpec("power_w", SAME),
    "npu_chip_info_temperature": MetricSpec("temp_c", SAME),
    "npu_chip_info_health_status": MetricSpec("health", states={1: "ok", 0: "failed"}),
}

IDENTITY = IdentityRules(
    uuid=("vdie_id",),
    index=("id",),
    model=("model_name",),
    pci_bus_id=("pcie_bus_info",),
    subdevice=(("v_dev_id", "vnpu:{}"),),
    pod=("pod_name",),
    container=("container_name",),
)

EXPORTER = ExporterMap(
    name="ascend",
    vendor="huawei",
    kind="npu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://www.hiascend.com/document (MindX DL, NPU-Exporter Prometheus Metrics API)",
)
