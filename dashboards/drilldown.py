"""Node and device drill-down: one node (chosen by site, then node) and its devices: identity and state,
utilization, power, temperature, memory and throughput per device, lifecycle events and allocations."""

from __future__ import annotations

from dashboards.spec import DashboardSpec, PanelSpec, Threshold
from dashboards.sqlparts import SILENT_AFTER_S, TEMP_ALERT_C, rollup_series, var_in
from dashboards.variables import DEVICE, NODE_ONE, SITE

__all__ = ["DRILLDOWN"]

_NODE = "d.node_id = ${node:sqlstring}"
_DEVICES = f"{_NODE} AND {var_in('d.device_uuid', 'device')}"
_R_JOIN = "JOIN devices d ON d.device_id = r.device_id"
_S_JOIN = "JOIN devices d ON d.device_id = s.device_id"

NODE_INFO = PanelSpec(
    title="Node",
    description=(
        f"The node: site, hostname, first and last snapshot (event time), seconds since the last one (silent "
        f"past {SILENT_AFTER_S:g} s) and how many devices it holds now."
    ),
    sql=f"""SELECT n.node_id AS node, n.site_id AS site, n.hostname AS hostname, n.first_seen AS first_seen,
       n.last_seen AS last_seen, extract(epoch FROM now() - n.last_seen) AS silent_s,
       (SELECT count(*) FROM devices d WHERE {_NODE}) AS devices
FROM nodes n
WHERE n.node_id = ${{node:sqlstring}}""",
    columns=("node", "site", "hostname", "first_seen", "last_seen", "silent_s", "devices"),
    width=24,
    height=4,
)

DEVICES = PanelSpec(
    title="Devices on the node",
    description=(
        "Each selected device on the node: identity, lifecycle status and since when, last reported health, "
        "last sample, and the organisation it is allocated to now."
    ),
    sql=f"""SELECT d.device_uuid AS device, d.vendor_id AS vendor, d.kind AS kind, d.model AS model,
       d.subdevice AS subdevice, d.status AS status, d.status_since AS status_since, h.name AS health,
       d.last_seen AS last_seen,
       (SELECT x.tenant FROM device_allocations x WHERE x.device_id = d.device_id
        ORDER BY x.since DESC LIMIT 1) AS organisation
FROM devices d
LEFT JOIN health_states h ON h.code = d.health
WHERE {_DEVICES}
ORDER BY d.pci_bus_id, d.device_uuid""",
    columns=(
        "device",
        "vendor",
        "kind",
        "model",
        "subdevice",
        "status",
        "status_since",
        "health",
        "last_seen",
        "organisation",
    ),
    width=24,
)


def _rollup_series(
    title: str,
    description: str,
    expr: str,
    column: str,
    unit: str,
    *,
    low: float | None = None,
    high: float | None = None,
    thresholds: tuple[Threshold, ...] = (),
) -> PanelSpec:
    return PanelSpec(
        title=title,
        description=description,
        sql=rollup_series("d.device_uuid", expr, column, joins=_R_JOIN, where=_DEVICES),
        columns=("time", "metric", column),
        viz="timeseries",
        fmt="time_series",
        unit=unit,
        interval="1m",
        min=low,
        max=high,
        thresholds=thresholds,
    )


UTIL = _rollup_series(
    "Utilization per device",
    "Mean utilization (util_pct) of each selected device of the node, from the rollups.",
    "sum(r.util_avg::float8 * r.samples) / nullif(sum(r.samples) FILTER (WHERE r.util_avg IS NOT NULL), 0)",
    "util_pct",
    "percent",
    low=0,
    high=100,
)
POWER = _rollup_series(
    "Power per device",
    "Mean power drawn (power_w) by each selected device of the node, in watts, from the rollups.",
    "avg(r.power_avg)",
    "power_w",
    "watt",
    low=0,
)
TEMP = _rollup_series(
    "Temperature per device",
    f"Mean temperature (temp_c) of each selected device of the node; red from {TEMP_ALERT_C:g} °C, the alert "
    "threshold.",
    "avg(r.temp_avg)",
    "temp_c",
    "celsius",
    thresholds=((None, "green"), (80.0, "orange"), (TEMP_ALERT_C, "red")),
)

MEMORY = PanelSpec(
    title="Memory used per device",
    description="Device memory in use (mem_used_bytes) of each selected device, from the raw samples.",
    sql=f"""SELECT $__timeGroupAlias(s.time, $__interval), d.device_uuid AS metric, avg(s.mem_used_bytes) AS mem_used
FROM device_samples s {_S_JOIN}
WHERE $__timeFilter(s.time) AND {_DEVICES}
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "mem_used"),
    viz="timeseries",
    fmt="time_series",
    unit="bytes",
    min=0,
    interval="10s",
)

THROUGHPUT = PanelSpec(
    title="Throughput per device",
    description=(
        "Work served by each selected device (throughput) in its workload's unit, e.g. tokens/s, from the raw "
        "samples; a device with nothing scheduled shows no line."
    ),
    sql=f"""SELECT $__timeGroupAlias(s.time, $__interval), d.device_uuid || ' ' || w.unit AS metric,
       avg(s.throughput) AS throughput
FROM device_samples s {_S_JOIN}
JOIN workloads w ON w.workload_id = s.workload_id
WHERE $__timeFilter(s.time) AND s.throughput IS NOT NULL AND {_DEVICES}
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "throughput"),
    viz="timeseries",
    fmt="time_series",
    unit="short",
    min=0,
    interval="10s",
)

EVENTS = PanelSpec(
    title="Lifecycle events of the node's devices",
    description="Ledger rows (deployment_events) of the selected devices in the time range, newest first.",
    sql=f"""SELECT e.at AS at, e.event AS event, e.device_uuid AS device, e.node_id AS node, e.site_id AS site,
       e.details::text AS details, e.seq AS seq
FROM deployment_events e
JOIN devices d ON d.device_id = e.device_id
WHERE $__timeFilter(e.at) AND {_DEVICES}
ORDER BY e.seq DESC
LIMIT 200""",
    columns=("at", "event", "device", "node", "site", "details", "seq"),
)

ALLOCATIONS = PanelSpec(
    title="Allocations of the node's devices",
    description=(
        "Who the selected devices were attributed to (device_allocations): each change in the time range, "
        "plus the allocation in force at its start."
    ),
    sql=f"""SELECT x.since AS since, d.device_uuid AS device, x.tenant AS organisation, x.namespace AS namespace,
       x.pod AS pod, x.container AS container
FROM device_allocations x
JOIN devices d ON d.device_id = x.device_id
WHERE {_DEVICES}
  AND x.since >= coalesce(
      (SELECT max(y.since) FROM device_allocations y
       WHERE y.device_id = x.device_id AND y.since <= $__timeFrom()::timestamptz),
      '-infinity')
  AND x.since <= $__timeTo()::timestamptz
ORDER BY x.since DESC, device
LIMIT 200""",
    columns=("since", "device", "organisation", "namespace", "pod", "container"),
    empty_ok="devices that never reported an attribution have no allocation rows",
)

DRILLDOWN = DashboardSpec(
    uid="kcloud-drilldown",
    title="kcloud / Node and device drill-down",
    description="One node and its devices in detail: state, telemetry, lifecycle and allocations.",
    tags=("kcloud", "drill-down"),
    variables=(SITE, NODE_ONE, DEVICE),
    panels=(NODE_INFO, DEVICES, UTIL, POWER, TEMP, MEMORY, THROUGHPUT, EVENTS, ALLOCATIONS),
    time_from="now-3h",
    refresh="1m",
)
