"""Fleet operations: what an operator watches: devices by status, utilization and power by site and
vendor, temperature hot spots, silent nodes, unhealthy devices, open alerts, ingest lag and rate, and
the vendor gateway's rejections (the database's view of dead letters)."""

from __future__ import annotations

from dashboards.spec import ALL_VALUE, DashboardSpec, PanelSpec
from dashboards.sqlparts import (
    ROLLUP_CTE,
    ROLLUP_DEVICE_NODE,
    SILENT_AFTER_S,
    TEMP_ALERT_C,
    device_filters,
    rollup_series,
    var_in,
    weighted_mean,
)
from dashboards.variables import KIND, SITE, VENDOR

__all__ = ["FLEET"]

_JOIN = ROLLUP_DEVICE_NODE

STATUS_NOW = PanelSpec(
    title="Devices by status now",
    description=(
        "Devices (accelerators and slices) by lifecycle status as the deployments processor last recorded it "
        "(devices.status): commissioned, active (busy), idle, offline (silent), returned, decommissioned."
    ),
    sql=f"""SELECT d.status AS status, count(*) AS devices
FROM devices d JOIN nodes n ON n.node_id = d.node_id
WHERE {device_filters()}
GROUP BY d.status
ORDER BY devices DESC""",
    columns=("status", "devices"),
    viz="piechart",
    unit="short",
    width=8,
)

UTIL_BY_SITE_VENDOR = PanelSpec(
    title="Utilization by site and vendor",
    description=(
        "Mean utilization (util_pct, weighted by samples) of the devices of each site and vendor, from the "
        "minute, hourly or daily rollups depending on the zoom. Devices are counted at their current node's site."
    ),
    sql=rollup_series("n.site_id || ' / ' || d.vendor_id", weighted_mean("util_avg"), "util_pct"),
    columns=("time", "metric", "util_pct"),
    viz="timeseries",
    fmt="time_series",
    unit="percent",
    min=0,
    max=100,
    interval="1m",
    width=16,
)

POWER_BY_SITE = PanelSpec(
    title="Power draw by site",
    description=(
        "Total power drawn by the selected devices of each site (sum over devices of each device's mean "
        "power_w in the interval), in watts."
    ),
    sql=f"""WITH {ROLLUP_CTE},
per_device AS (
    SELECT $__timeGroup(r.bucket, $__interval) AS t, n.site_id, r.device_id, avg(r.power_avg) AS power_w
    FROM r {_JOIN}
    WHERE {device_filters()}
    GROUP BY 1, 2, 3
)
SELECT t AS "time", site_id AS metric, sum(power_w) AS power_w
FROM per_device
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "power_w"),
    viz="timeseries",
    fmt="time_series",
    unit="watt",
    min=0,
    interval="1m",
)

HOT_SPOTS = PanelSpec(
    title="Temperature hot spots",
    description=(
        "The 20 hottest devices in the time range by their highest minute (or hour) mean temperature "
        f"(temp_c); orange from 80 °C, red from {TEMP_ALERT_C:g} °C, the service's alert threshold."
    ),
    sql=f"""WITH {ROLLUP_CTE}
SELECT d.device_uuid AS device, n.node_id AS node, n.site_id AS site, d.model AS model,
       max(r.temp_avg) AS temp_max_c, avg(r.temp_avg) AS temp_mean_c
FROM r {_JOIN}
WHERE {device_filters()} AND r.temp_avg IS NOT NULL
GROUP BY d.device_uuid, n.node_id, n.site_id, d.model
ORDER BY temp_max_c DESC
LIMIT 20""",
    columns=("device", "node", "site", "model", "temp_max_c", "temp_mean_c"),
    unit="celsius",
    thresholds=((None, "green"), (80.0, "orange"), (TEMP_ALERT_C, "red")),
)

SILENT_NODES = PanelSpec(
    title="Silent nodes",
    description=(
        f"Nodes whose newest snapshot (nodes.last_seen, event time) is more than {SILENT_AFTER_S:g} s older than "
        "the end of the time range (now, normally): the lifecycle's offline threshold. An empty table means "
        "every node is reporting."
    ),
    sql=f"""SELECT n.node_id AS node, n.site_id AS site, n.hostname AS hostname, n.last_seen AS last_seen,
       extract(epoch FROM $__timeTo()::timestamptz - n.last_seen) AS silent_s,
       (SELECT count(*) FROM devices d WHERE d.node_id = n.node_id) AS devices
FROM nodes n
WHERE {var_in("n.site_id", "site")}
  AND EXISTS (SELECT 1 FROM devices d WHERE d.node_id = n.node_id AND {var_in("d.vendor_id", "vendor")}
              AND {var_in("d.kind", "kind")})
  AND n.last_seen < $__timeTo()::timestamptz - interval '{SILENT_AFTER_S:g} seconds'
ORDER BY n.last_seen""",
    columns=("node", "site", "hostname", "last_seen", "silent_s", "devices"),
    unit="s",
    thresholds=((None, "orange"), (3600.0, "red")),
    empty_ok="every node reporting is the normal state",
)

UNHEALTHY = PanelSpec(
    title="Degraded and failed devices",
    description=(
        "Devices whose last reported health (devices.health) is degraded or failed, with where they are; "
        "failed devices also raise a Grafana alert."
    ),
    sql=f"""SELECT d.device_uuid AS device, n.node_id AS node, n.site_id AS site, d.vendor_id AS vendor,
       d.model AS model, h.name AS health, d.status AS status, d.last_seen AS last_seen
FROM devices d
JOIN nodes n ON n.node_id = d.node_id
JOIN health_states h ON h.code = d.health
WHERE h.name IN ('degraded', 'failed') AND {device_filters()}
ORDER BY d.health DESC, d.last_seen DESC""",
    columns=("device", "node", "site", "vendor", "model", "health", "status", "last_seen"),
    empty_ok="a healthy fleet has no degraded or failed device",
)

OPEN_ALERTS = PanelSpec(
    title="Open alerts",
    description=(
        "Alerts not yet resolved (alerts.resolved_at is empty), most severe and newest first. Alerts without "
        "a site or vendor show only while that variable is All."
    ),
    sql=f"""SELECT a.started_at AS started_at, a.severity AS severity, a.rule AS rule, a.summary AS summary,
       a.site_id AS site, a.node_id AS node, a.vendor_id AS vendor
FROM alerts a
WHERE a.resolved_at IS NULL
  AND ({var_in("a.site_id", "site")} OR (a.site_id IS NULL AND {ALL_VALUE} IN ($site)))
  AND ({var_in("a.vendor_id", "vendor")} OR (a.vendor_id IS NULL AND {ALL_VALUE} IN ($vendor)))
ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.started_at DESC
LIMIT 200""",
    columns=("started_at", "severity", "rule", "summary", "site", "node", "vendor"),
    width=16,
    empty_ok="no open alert is the normal state (and the table is empty until the alerts processor runs)",
)

INGEST_LAG = PanelSpec(
    title="Ingest lag",
    description=(
        "Seconds between now and the newest snapshot stored from the selected sites (now() - "
        "max(nodes.last_seen), in event time): how far the database trails the fleet."
    ),
    sql=f"""SELECT extract(epoch FROM now() - max(n.last_seen)) AS lag_s
FROM nodes n
WHERE {var_in("n.site_id", "site")}""",
    columns=("lag_s",),
    viz="stat",
    unit="s",
    thresholds=((None, "green"), (60.0, "orange"), (300.0, "red")),
    width=8,
    height=5,
)

INGEST_RATE = PanelSpec(
    title="Samples stored per second",
    description=(
        "Device samples stored per second of event time (from the rollups' sample counts): the ingest's "
        "throughput as the fleet produced it; a drop means collectors or the ingest stopped."
    ),
    sql=rollup_series("n.site_id", "sum(r.samples)::float8 / greatest($__interval_ms / 1000.0, 60)", "samples_per_s"),
    columns=("time", "metric", "samples_per_s"),
    viz="timeseries",
    fmt="time_series",
    unit="suffix: samples/s",
    min=0,
    interval="1m",
)

GATEWAY_REJECTIONS = PanelSpec(
    title="Dead-letter rate (vendor gateway rejections)",
    description=(
        "The stream ingest's dead letters go to the Kafka topic kcloud.deadletter.v1 with their reason and are "
        "not stored in the database: there is no table of them to chart. This panel shows the rejections the "
        "database does record: device samples refused by the vendor push gateway (ingest_audit.rejected), "
        "per second, by vendor. Read kcloud.deadletter.v1 (e.g. with kcat) for the stream's dead letters."
    ),
    sql=f"""SELECT $__timeGroupAlias(g.at, $__interval), coalesce(g.vendor_id, 'unknown token') AS metric,
       sum(g.rejected)::float8 / ($__interval_ms / 1000.0) AS rejected_per_s
FROM ingest_audit g
WHERE $__timeFilter(g.at) AND ({var_in("g.vendor_id", "vendor")} OR g.vendor_id IS NULL)
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "rejected_per_s"),
    viz="timeseries",
    fmt="time_series",
    unit="suffix: samples/s",
    min=0,
    empty_ok="ingest_audit is written only by the vendor push gateway; collectors alone leave it empty",
)

FLEET = DashboardSpec(
    uid="kcloud-fleet",
    title="kcloud / Fleet operations",
    description="The whole fleet now: status, utilization, power, heat, silence, alerts and ingest health.",
    tags=("kcloud", "operations"),
    variables=(SITE, VENDOR, KIND),
    panels=(
        STATUS_NOW,
        UTIL_BY_SITE_VENDOR,
        INGEST_LAG,
        INGEST_RATE,
        GATEWAY_REJECTIONS,
        POWER_BY_SITE,
        HOT_SPOTS,
        SILENT_NODES,
        UNHEALTHY,
        OPEN_ALERTS,
    ),
)
