"""FuriosaAI furiosa-metrics-exporter (github.com/furiosa-ai/furiosa-metrics-exporter) → canonical fields.

Its README lists `furiosa_npu_alive`, `furiosa_npu_error`, `furiosa_npu_hw_temperature`
(`label="peak"`: hottest SoC sensor; `label="ambient"`: board) and `furiosa_npu_hw_power`
(`label="rms"`), and newer releases add one `furiosa_npu_core_utilization` series per core (`core="0"`,
`"1"`, ...), averaged here per device. Power is W in the docs but µW (4795000) in the exporter's own
tests and README example: values above 10 000 are taken as µW. No memory metric is exported.

Labels: `uuid`, `device` (`npu0` → index 0), `arch` (`warboy`, `rngd`; also used as the model, the
exporter names no other), `pci_bus_id`, `core`, and `namespace`/`pod`/`container` under Kubernetes.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import SAME, furiosa_power_w

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    "furiosa_npu_core_utilization": MetricSpec("util_pct", SAME, aggregate="mean"),
    "furiosa_npu_hw_power": MetricSpec("power_w", furiosa_power_w, where={"label": "rms"}),
    "furiosa_npu_hw_temperature": MetricSpec("temp_c", SAME, where={"label": "peak"}),
    "furiosa_npu_alive": MetricSpec("health", states={1: "ok", 0: "failed"}),
}

IDENTITY = IdentityRules(
    uuid=("uuid",),
    index=("device",),
    model=("arch",),
    arch=("arch",),
    pci_bus_id=("pci_bus_id",),
)

EXPORTER = ExporterMap(
    name="furiosa",
    vendor="furiosa",
    kind="npu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://github.com/furiosa-ai/furiosa-metrics-exporter#metrics",
)
