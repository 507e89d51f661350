"""Domestic NPU evidence (K-Cloud): what a programme manager shows: domestic cards in service over time
by vendor and site, service hours, availability, telemetry completeness per vendor feed, the lifecycle
events behind them (deployment_events) and the ledger head they can be checked against."""

from __future__ import annotations

from dashboards.spec import DashboardSpec, PanelSpec
from dashboards.sqlparts import ROLLUP_CTE, SAMPLE_INTERVAL_S, rollup_series, var_in
from dashboards.variables import DOMESTIC_VENDOR, SITE

__all__ = ["EVIDENCE"]

_DOMESTIC = (
    "JOIN devices d ON d.device_id = r.device_id JOIN nodes n ON n.node_id = d.node_id "
    "JOIN vendors v ON v.vendor_id = d.vendor_id"
)
_FILTERS = f"v.domestic AND {var_in('n.site_id', 'site')} AND {var_in('d.vendor_id', 'vendor')}"
#: seconds each domestic device was due to report in the range: from its first sample (or the range
#: start) to the range end, now, or its decommissioning, whichever comes first
_DUE_CTE = f"""due AS (
    SELECT d.device_id, d.vendor_id, n.site_id,
           greatest(0, extract(epoch FROM
               least($__timeTo()::timestamptz, now(),
                     CASE WHEN d.status = 'decommissioned' THEN d.status_since END)
               - greatest($__timeFrom()::timestamptz, d.first_seen))) AS due_s
    FROM devices d JOIN nodes n ON n.node_id = d.node_id JOIN vendors v ON v.vendor_id = d.vendor_id
    WHERE {_FILTERS}
),
seen AS (
    SELECT r.device_id, sum(r.seconds_observed) AS seen_s, sum(r.samples) AS samples
    FROM r GROUP BY r.device_id
)"""

CARDS_IN_SERVICE = PanelSpec(
    title="Domestic cards in service",
    description=(
        "Domestic NPU cards that reported telemetry in each interval, by vendor and site: a card counts as in "
        "service for an interval when at least one of its samples falls in it."
    ),
    sql=rollup_series(
        "d.vendor_id || ' @ ' || n.site_id", "count(DISTINCT r.device_id)", "cards", joins=_DOMESTIC, where=_FILTERS
    ),
    columns=("time", "metric", "cards"),
    viz="timeseries",
    fmt="time_series",
    unit="short",
    min=0,
    interval="1m",
    width=16,
)

CARDS_NOW = PanelSpec(
    title="Domestic cards in service now",
    description=(
        "Domestic NPU cards per vendor whose lifecycle status is commissioned, active or idle (not offline, "
        "returned or decommissioned), as devices.status says now."
    ),
    sql=f"""SELECT d.vendor_id AS vendor, count(*) AS cards
FROM devices d JOIN nodes n ON n.node_id = d.node_id JOIN vendors v ON v.vendor_id = d.vendor_id
WHERE d.status IN ('commissioned', 'active', 'idle') AND {_FILTERS}
GROUP BY d.vendor_id
ORDER BY d.vendor_id""",
    columns=("vendor", "cards"),
    viz="bargauge",
    unit="short",
    min=0,
    width=8,
)

SERVICE_HOURS = PanelSpec(
    title="Service hours and availability by vendor and site",
    description=(
        "Per domestic vendor and site in the time range: cards, card-hours of telemetry (service hours, from "
        "the rollups' seconds_observed), and availability = service hours / the hours the cards were due "
        "(from first seen, or the range start, to the range end or decommissioning). Hour- or day-aligned "
        "at long ranges."
    ),
    sql=f"""WITH {ROLLUP_CTE},
{_DUE_CTE}
SELECT due.vendor_id AS vendor, due.site_id AS site, count(*) AS cards,
       sum(coalesce(seen.seen_s, 0)) / 3600.0 AS service_hours,
       100.0 * sum(coalesce(seen.seen_s, 0)) / nullif(sum(due.due_s), 0) AS availability_pct
FROM due LEFT JOIN seen ON seen.device_id = due.device_id
GROUP BY due.vendor_id, due.site_id
ORDER BY vendor, site""",
    columns=("vendor", "site", "cards", "service_hours", "availability_pct"),
    unit="short",
    thresholds=((None, "red"), (95.0, "orange"), (99.0, "green")),
    decimals=1,
    width=16,
)

AVAILABILITY = PanelSpec(
    title="Availability by vendor",
    description=(
        "Service hours / due hours of each domestic vendor's cards in the time range (see the table beside); "
        "red under 95 %, green from 99 %."
    ),
    sql=f"""WITH {ROLLUP_CTE},
{_DUE_CTE}
SELECT due.vendor_id AS vendor,
       100.0 * sum(coalesce(seen.seen_s, 0)) / nullif(sum(due.due_s), 0) AS availability_pct
FROM due LEFT JOIN seen ON seen.device_id = due.device_id
GROUP BY due.vendor_id
ORDER BY vendor""",
    columns=("vendor", "availability_pct"),
    viz="bargauge",
    unit="percent",
    min=0,
    max=100,
    thresholds=((None, "red"), (95.0, "orange"), (99.0, "green")),
    width=8,
)

COMPLETENESS = PanelSpec(
    title="Telemetry completeness per vendor feed",
    description=(
        "Samples stored / samples expected for each domestic vendor's feed in the time range, expecting one "
        f"sample per card every {SAMPLE_INTERVAL_S:g} s (the nominal collector cadence) while the card was due. "
        "Under 100 %: missed or late ticks, silent cards, or a feed that drops devices."
    ),
    sql=f"""WITH {ROLLUP_CTE},
{_DUE_CTE}
SELECT due.vendor_id AS vendor,
       100.0 * sum(coalesce(seen.samples, 0)) / nullif(sum(due.due_s) / {SAMPLE_INTERVAL_S:g}, 0)
           AS completeness_pct
FROM due LEFT JOIN seen ON seen.device_id = due.device_id
GROUP BY due.vendor_id
ORDER BY vendor""",
    columns=("vendor", "completeness_pct"),
    viz="bargauge",
    unit="percent",
    min=0,
    max=100,
    thresholds=((None, "red"), (90.0, "orange"), (98.0, "green")),
    width=8,
)

EVENTS_OVER_TIME = PanelSpec(
    title="Lifecycle events over time",
    description=(
        "Lifecycle transitions of domestic cards recorded in the ledger (deployment_events) per interval, by "
        "event: commissioned, active, idle, offline, returned, health_changed, relocated, decommissioned."
    ),
    sql=f"""SELECT $__timeGroupAlias(e.at, $__interval), e.event AS metric, count(*) AS events
FROM deployment_events e
JOIN devices d ON d.device_id = e.device_id
JOIN nodes n ON n.node_id = d.node_id
JOIN vendors v ON v.vendor_id = d.vendor_id
WHERE $__timeFilter(e.at) AND {_FILTERS}
GROUP BY 1, 2
ORDER BY 1, 2""",
    columns=("time", "metric", "events"),
    viz="timeseries",
    fmt="time_series",
    unit="short",
    min=0,
    interval="1m",
    width=16,
)

LEDGER_HEAD = PanelSpec(
    title="Ledger head",
    description=(
        "The newest row of the whole deployment ledger (all vendors, not filtered): its sequence number and "
        "hash, and the number of rows. A report built now names this head; `kcloud ledger verify` checks the "
        "chain up to it."
    ),
    sql="""SELECT e.seq AS head_seq, e.hash AS head_hash, e.at AS head_at,
       (SELECT count(*) FROM deployment_events) AS ledger_rows
FROM deployment_events e
ORDER BY e.seq DESC
LIMIT 1""",
    columns=("head_seq", "head_hash", "head_at", "ledger_rows"),
    width=24,
    height=4,
)

EVENTS = PanelSpec(
    title="Lifecycle events",
    description=(
        "The ledger rows (deployment_events) of domestic cards in the time range, newest first (at most 500): "
        "event, device, where it was, and the event's details."
    ),
    sql=f"""SELECT e.at AS at, e.event AS event, e.device_uuid AS device, d.vendor_id AS vendor,
       e.node_id AS node, e.site_id AS site, e.details::text AS details, e.seq AS seq
FROM deployment_events e
JOIN devices d ON d.device_id = e.device_id
JOIN nodes n ON n.node_id = d.node_id
JOIN vendors v ON v.vendor_id = d.vendor_id
WHERE $__timeFilter(e.at) AND {_FILTERS}
ORDER BY e.seq DESC
LIMIT 500""",
    columns=("at", "event", "device", "vendor", "node", "site", "details", "seq"),
    width=24,
    height=10,
)

EVIDENCE = DashboardSpec(
    uid="kcloud-npu-evidence",
    title="kcloud / Domestic NPU evidence (K-Cloud)",
    description=(
        "Evidence for the K-Cloud programme: domestic NPU cards in service, service hours, availability, "
        "telemetry completeness and the ledger of lifecycle events."
    ),
    tags=("kcloud", "k-cloud", "evidence"),
    variables=(SITE, DOMESTIC_VENDOR),
    panels=(
        CARDS_IN_SERVICE,
        CARDS_NOW,
        SERVICE_HOURS,
        AVAILABILITY,
        EVENTS_OVER_TIME,
        COMPLETENESS,
        LEDGER_HEAD,
        EVENTS,
    ),
    time_from="now-7d",
    refresh="5m",
)
