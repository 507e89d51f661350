"""Allocation accountability: per organisation (the tenant devices report, kept in device_allocations),
the card-hours allocated and the card-hours busy, allocations sitting idle, and the workload mix."""

from __future__ import annotations

from dashboards.spec import DashboardSpec, PanelSpec
from dashboards.sqlparts import ROLLUP_CTE, SAMPLE_INTERVAL_S, device_filters, var_in
from dashboards.variables import KIND, SITE, TENANT, VENDOR
from kcloud.settings import Settings

__all__ = ["ALLOCATION"]

#: below this mean utilization a device counts as idle (the lifecycle's active/idle threshold)
IDLE_UTIL_PCT = float(Settings.model_fields["active_util_pct"].default)

#: every rollup row with the organisation its device was allocated to at the time (the allocation row in
#: force at the end of the bucket); rows of devices never attributed are left out
_ALLOCATED = f"""WITH {ROLLUP_CTE},
a AS (
    SELECT r.*, al.tenant
    FROM r
    JOIN LATERAL (
        SELECT x.tenant FROM device_allocations x
        WHERE x.device_id = r.device_id AND x.since < r.bucket_end
        ORDER BY x.since DESC LIMIT 1
    ) al ON true
    WHERE al.tenant IS NOT NULL
)"""
_JOIN = "JOIN devices d ON d.device_id = a.device_id JOIN nodes n ON n.node_id = d.node_id"
_FILTERS = f"{device_filters()} AND {var_in('a.tenant', 'tenant')}"

CARD_HOURS = PanelSpec(
    title="Allocated vs busy card-hours by organisation",
    description=(
        "Per organisation in the time range: cards allocated, card-hours allocated (telemetry time of cards "
        "attributed to it) and card-hours busy (allocated hours weighted by utilization), and the busy share. "
        "A low share is capacity reserved but not used."
    ),
    sql=f"""{_ALLOCATED}
SELECT a.tenant AS organisation, count(DISTINCT a.device_id) AS cards,
       sum(a.seconds_observed) / 3600.0 AS allocated_card_hours,
       sum(a.seconds_observed * coalesce(a.util_avg, 0) / 100.0) / 3600.0 AS busy_card_hours,
       100.0 * sum(a.seconds_observed * coalesce(a.util_avg, 0) / 100.0) / nullif(sum(a.seconds_observed), 0)
           AS busy_pct
FROM a {_JOIN}
WHERE {_FILTERS}
GROUP BY a.tenant
ORDER BY allocated_card_hours DESC""",
    columns=("organisation", "cards", "allocated_card_hours", "busy_card_hours", "busy_pct"),
    unit="short",
    decimals=1,
    thresholds=((None, "red"), (20.0, "orange"), (50.0, "green")),
    width=14,
    height=10,
)

BUSY_SHARE = PanelSpec(
    title="Busy share of allocated time by organisation",
    description="Busy card-hours / allocated card-hours of each organisation over time (see the table).",
    sql=f"""{_ALLOCATED}
SELECT $__timeGroupAlias(a.bucket, $__interval), a.tenant AS metric,
       100.0 * sum(a.seconds_observed * coalesce(a.util_avg, 0) / 100.0) / nullif(sum(a.seconds_observed), 0)
           AS busy_pct
FROM a {_JOIN}
WHERE {_FILTERS}
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "busy_pct"),
    viz="timeseries",
    fmt="time_series",
    unit="percent",
    min=0,
    max=100,
    interval="1m",
    width=10,
    height=10,
)

IDLE_ALLOCATIONS = PanelSpec(
    title="Idle allocations",
    description=(
        "Devices allocated to an organisation now (their newest device_allocations row names a tenant) whose "
        f"mean utilization in the time range is under {IDLE_UTIL_PCT:g} % (the idle threshold): reserved and "
        "unused, or a model loaded and serving nothing. Longest allocated first."
    ),
    sql=f"""WITH {ROLLUP_CTE},
cur AS (
    SELECT DISTINCT ON (x.device_id) x.device_id, x.tenant, x.namespace, x.pod, x.since
    FROM device_allocations x ORDER BY x.device_id, x.since DESC
),
use AS (
    SELECT r.device_id,
           sum(r.util_avg::float8 * r.samples) / nullif(sum(r.samples) FILTER (WHERE r.util_avg IS NOT NULL), 0)
               AS util_pct,
           sum(r.seconds_observed) / 3600.0 AS hours
    FROM r GROUP BY r.device_id
)
SELECT cur.tenant AS organisation, d.device_uuid AS device, n.node_id AS node, n.site_id AS site,
       d.model AS model, cur.namespace AS namespace, cur.pod AS pod, cur.since AS allocated_since,
       use.util_pct AS util_pct, use.hours AS idle_hours
FROM cur
JOIN use ON use.device_id = cur.device_id
JOIN devices d ON d.device_id = cur.device_id
JOIN nodes n ON n.node_id = d.node_id
WHERE cur.tenant IS NOT NULL AND use.util_pct < {IDLE_UTIL_PCT:g}
  AND {device_filters()} AND {var_in("cur.tenant", "tenant")}
ORDER BY cur.since, organisation
LIMIT 500""",
    columns=(
        "organisation",
        "device",
        "node",
        "site",
        "model",
        "namespace",
        "pod",
        "allocated_since",
        "util_pct",
        "idle_hours",
    ),
    width=24,
    height=10,
    empty_ok="a fleet whose every allocation is in use has none",
)

WORKLOAD_MIX = PanelSpec(
    title="Workload mix by organisation",
    description=(
        "Device-hours each organisation spent on each workload in the time range (samples naming the workload "
        f"times the {SAMPLE_INTERVAL_S:g} s cadence), with the mean throughput in the workload's own unit. Read "
        "from the raw samples (hourly pre-aggregated), so long ranges are slow."
    ),
    sql=f"""WITH hourly AS (
    SELECT s.device_id, s.workload_id, date_bin('1 hour', s.time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour,
           count(*) AS samples, avg(s.throughput) AS throughput
    FROM device_samples s
    WHERE $__timeFilter(s.time) AND s.workload_id IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT al.tenant AS organisation, w.name AS workload, w.unit AS unit,
       sum(h.samples) * {SAMPLE_INTERVAL_S:g} / 3600.0 AS device_hours,
       sum(h.throughput * h.samples) / nullif(sum(h.samples), 0) AS mean_throughput
FROM hourly h
JOIN workloads w ON w.workload_id = h.workload_id
JOIN devices d ON d.device_id = h.device_id
JOIN nodes n ON n.node_id = d.node_id
JOIN LATERAL (
    SELECT x.tenant FROM device_allocations x
    WHERE x.device_id = h.device_id AND x.since < h.hour + interval '1 hour'
    ORDER BY x.since DESC LIMIT 1
) al ON true
WHERE al.tenant IS NOT NULL AND {device_filters()} AND {var_in("al.tenant", "tenant")}
GROUP BY al.tenant, w.name, w.unit
ORDER BY organisation, device_hours DESC""",
    columns=("organisation", "workload", "unit", "device_hours", "mean_throughput"),
    decimals=1,
    width=14,
    height=10,
)

WORKLOAD_SHARE = PanelSpec(
    title="Workload share of device-hours",
    description=(
        "Share of device-hours per workload in the time range, over the devices that have been allocated to "
        "the selected organisations (all devices with a tenant when All)."
    ),
    sql=f"""SELECT w.name AS workload, count(*) * {SAMPLE_INTERVAL_S:g} / 3600.0 AS device_hours
FROM device_samples s
JOIN workloads w ON w.workload_id = s.workload_id
JOIN devices d ON d.device_id = s.device_id
JOIN nodes n ON n.node_id = d.node_id
WHERE $__timeFilter(s.time) AND {device_filters()}
  AND EXISTS (
      SELECT 1 FROM device_allocations x
      WHERE x.device_id = s.device_id AND x.tenant IS NOT NULL AND {var_in("x.tenant", "tenant")}
  )
GROUP BY w.name
ORDER BY device_hours DESC""",
    columns=("workload", "device_hours"),
    viz="piechart",
    unit="h",
    width=10,
    height=10,
)

ALLOCATION = DashboardSpec(
    uid="kcloud-allocation",
    title="kcloud / Allocation accountability",
    description="Per organisation: card-hours allocated and used, idle allocations and the workload mix.",
    tags=("kcloud", "allocation"),
    variables=(SITE, VENDOR, KIND, TENANT),
    panels=(CARD_HOURS, BUSY_SHARE, WORKLOAD_MIX, WORKLOAD_SHARE, IDLE_ALLOCATIONS),
    time_from="now-24h",
    refresh="5m",
)
