"""GPU vs NPU: utilization, power, energy and performance per watt (throughput / power) of the two
kinds side by side, by model and site, so a domestic NPU can be read beside the GPUs at the same site."""

from __future__ import annotations

from dashboards.spec import DashboardSpec, PanelSpec
from dashboards.sqlparts import ROLLUP_CTE, ROLLUP_DEVICE_NODE, device_filters, rollup_series, weighted_mean
from dashboards.variables import KIND, SITE, VENDOR

__all__ = ["GPU_NPU"]

_JOIN = ROLLUP_DEVICE_NODE

UTIL_BY_KIND = PanelSpec(
    title="Utilization: GPU vs NPU",
    description="Mean utilization (util_pct, weighted by samples) of all selected GPUs and of all selected NPUs.",
    sql=rollup_series("upper(d.kind)", weighted_mean("util_avg"), "util_pct"),
    columns=("time", "metric", "util_pct"),
    viz="timeseries",
    fmt="time_series",
    unit="percent",
    min=0,
    max=100,
    interval="1m",
)

POWER_PER_DEVICE_BY_KIND = PanelSpec(
    title="Power per device: GPU vs NPU",
    description="Mean power drawn per device (power_w) by GPUs and by NPUs, in watts: what one card costs to run.",
    sql=rollup_series("upper(d.kind)", weighted_mean("power_avg"), "power_w"),
    columns=("time", "metric", "power_w"),
    viz="timeseries",
    fmt="time_series",
    unit="watt",
    min=0,
    interval="1m",
)

ENERGY_BY_KIND = PanelSpec(
    title="Energy used: GPU vs NPU",
    description=(
        "Energy used in the time range by all selected GPUs and NPUs (sum of energy_j over the rollups, from "
        "the devices' energy counters), in kilowatt-hours."
    ),
    sql=f"""WITH {ROLLUP_CTE}
SELECT upper(d.kind) AS kind, sum(r.energy_j) / 3.6e6 AS energy_kwh
FROM r {_JOIN}
WHERE {device_filters()}
GROUP BY 1
ORDER BY 1""",
    columns=("kind", "energy_kwh"),
    viz="bargauge",
    unit="kwatth",
    min=0,
    width=8,
)

BY_MODEL_SITE = PanelSpec(
    title="Utilization, power and energy by model and site",
    description=(
        "Per accelerator model and site in the time range: devices seen, mean utilization, mean power per "
        "device, and energy used (kWh). GPU and NPU rows side by side, sorted by kind then site."
    ),
    sql=f"""WITH {ROLLUP_CTE}
SELECT d.kind AS kind, d.model AS model, n.site_id AS site, count(DISTINCT r.device_id) AS devices,
       sum(r.util_avg::float8 * r.samples) / nullif(sum(r.samples) FILTER (WHERE r.util_avg IS NOT NULL), 0)
           AS util_pct,
       sum(r.power_avg::float8 * r.samples) / nullif(sum(r.samples) FILTER (WHERE r.power_avg IS NOT NULL), 0)
           AS power_w,
       sum(r.energy_j) / 3.6e6 AS energy_kwh
FROM r {_JOIN}
WHERE {device_filters()}
GROUP BY d.kind, d.model, n.site_id
ORDER BY kind, site, model""",
    columns=("kind", "model", "site", "devices", "util_pct", "power_w", "energy_kwh"),
    width=16,
)

PERF_PER_WATT = PanelSpec(
    title="Performance per watt by model and site",
    description=(
        "Throughput per watt (sum of throughput / sum of power_w over the samples that report both) per model, "
        "site and workload, e.g. tokens/s per W (= tokens per joule). Compare a unit only with the same unit "
        "and workload. Read from the raw samples, so long ranges are slow."
    ),
    sql=f"""SELECT d.kind AS kind, d.model AS model, n.site_id AS site, w.name AS workload, w.unit AS unit,
       count(DISTINCT s.device_id) AS devices,
       avg(s.throughput) AS throughput_per_device,
       avg(s.power_w) AS power_w,
       sum(s.throughput::float8) / nullif(sum(s.power_w::float8), 0) AS per_watt
FROM device_samples s
JOIN devices d ON d.device_id = s.device_id
JOIN nodes n ON n.node_id = d.node_id
JOIN workloads w ON w.workload_id = s.workload_id
WHERE $__timeFilter(s.time) AND s.throughput IS NOT NULL AND s.power_w > 0 AND {device_filters()}
GROUP BY d.kind, d.model, n.site_id, w.name, w.unit
ORDER BY workload, unit, per_watt DESC""",
    columns=("kind", "model", "site", "workload", "unit", "devices", "throughput_per_device", "power_w", "per_watt"),
    width=24,
    height=10,
    decimals=2,
)

PERF_PER_WATT_OVER_TIME = PanelSpec(
    title="Performance per watt over time: GPU vs NPU",
    description=(
        "Throughput per watt of GPUs and NPUs per throughput unit (e.g. tokens/s per W), over time, from the "
        "raw samples that report both throughput and power."
    ),
    sql=f"""SELECT $__timeGroupAlias(s.time, $__interval), upper(d.kind) || ' ' || w.unit || ' per W' AS metric,
       sum(s.throughput::float8) / nullif(sum(s.power_w::float8), 0) AS per_watt
FROM device_samples s
JOIN devices d ON d.device_id = s.device_id
JOIN nodes n ON n.node_id = d.node_id
JOIN workloads w ON w.workload_id = s.workload_id
WHERE $__timeFilter(s.time) AND s.throughput IS NOT NULL AND s.power_w > 0 AND {device_filters()}
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "per_watt"),
    viz="timeseries",
    fmt="time_series",
    unit="short",
    min=0,
    interval="1m",
    max_data_points=200,
)

GPU_NPU = DashboardSpec(
    uid="kcloud-gpu-vs-npu",
    title="kcloud / GPU vs NPU",
    description="GPUs and NPUs side by side: utilization, power, energy and performance per watt by model and site.",
    tags=("kcloud", "comparison"),
    variables=(SITE, VENDOR, KIND),
    panels=(
        UTIL_BY_KIND,
        POWER_PER_DEVICE_BY_KIND,
        ENERGY_BY_KIND,
        BY_MODEL_SITE,
        PERF_PER_WATT,
        PERF_PER_WATT_OVER_TIME,
    ),
)
