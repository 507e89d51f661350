"""SQL fragments the dashboards share: template-variable filters, the rollup level chosen by Grafana's
`$__interval`, and the thresholds taken from the service's settings defaults.

The rollup CTE `r` reads the finest rollup the panel's resolution needs: minute rows while the
interval is under 5 minutes, hourly under 6 hours, daily beyond (at the panels' 500 points: ranges
up to ~1.7 days read minutes, up to ~4 months hours). The branches not taken are pruned by PostgreSQL
before they touch a row (their WHERE is a constant false).

Example:
    >>> var_in("n.site_id", "site")
    "(n.site_id IN ($site) OR '__all' IN ($site))"
"""

from __future__ import annotations

from dashboards.spec import ALL_VALUE
from kcloud.settings import Settings

__all__ = [
    "ROLLUP_CTE",
    "ROLLUP_DEVICE_NODE",
    "SAMPLE_INTERVAL_S",
    "SILENT_AFTER_S",
    "TEMP_ALERT_C",
    "device_filters",
    "rollup_series",
    "var_in",
    "weighted_mean",
]

_DEFAULTS = {name: f.default for name, f in Settings.model_fields.items()}
#: nominal collector cadence: the denominator of telemetry completeness
SAMPLE_INTERVAL_S: float = float(_DEFAULTS["sample_interval_s"])
#: a node is silent after this many seconds without a snapshot (the lifecycle's offline threshold)
SILENT_AFTER_S: float = SAMPLE_INTERVAL_S * int(_DEFAULTS["offline_after_intervals"])
TEMP_ALERT_C: float = float(_DEFAULTS["temp_alert_c"])


def var_in(column: str, var: str) -> str:
    """`column` is one of the values selected in multi-value variable `var`, or `var` is "All"."""
    return f"({column} IN (${var}) OR {ALL_VALUE} IN (${var}))"


def device_filters(device: str = "d", node: str = "n", *, kind: bool = True) -> str:
    """The site / vendor / kind filters of a query joining devices `device` and nodes `node`."""
    parts = [var_in(f"{node}.site_id", "site"), var_in(f"{device}.vendor_id", "vendor")]
    if kind:
        parts.append(var_in(f"{device}.kind", "kind"))
    return " AND ".join(parts)


def _level(table: str, width: str, condition: str) -> str:
    return (
        f"SELECT device_id, bucket, bucket + interval '{width}' AS bucket_end, util_avg, util_max, power_avg,\n"
        f"           energy_j, temp_avg, samples, seconds_observed\n"
        f"    FROM {table} WHERE {condition} AND $__timeFilter(bucket)"
    )


#: `WITH r AS (...)`-ready body: the rollup rows of the time range at the level the interval needs
ROLLUP_CTE = (
    "r AS (\n    "
    + _level("device_rollup_1m", "1 minute", "$__interval_ms < 300000")
    + "\n    UNION ALL\n    "
    + _level("device_rollup_1h", "1 hour", "$__interval_ms >= 300000 AND $__interval_ms < 21600000")
    + "\n    UNION ALL\n    "
    + _level("device_rollup_1d", "1 day", "$__interval_ms >= 21600000")
    + "\n)"
)


#: the rollup rows' devices and nodes (for the site / vendor / kind filters)
ROLLUP_DEVICE_NODE = "JOIN devices d ON d.device_id = r.device_id JOIN nodes n ON n.node_id = d.node_id"


def weighted_mean(column: str) -> str:
    """The mean of rollup average `column` weighted by the samples behind each row (rows where it is null
    left out), i.e. the mean of the samples themselves."""
    return f"sum(r.{column}::float8 * r.samples) / nullif(sum(r.samples) FILTER (WHERE r.{column} IS NOT NULL), 0)"


def rollup_series(metric: str, value: str, column: str, *, joins: str = ROLLUP_DEVICE_NODE, where: str = "") -> str:
    """A Grafana time series over the rollups of the time range: one series per `metric` (an SQL expression),
    `value` as `column` per time bucket; `where` defaults to the site / vendor / kind filters."""
    return f"""WITH {ROLLUP_CTE}
SELECT $__timeGroupAlias(r.bucket, $__interval), {metric} AS metric,
       {value} AS {column}
FROM r {joins}
WHERE {where or device_filters()}
GROUP BY 1, 2
ORDER BY 1, 2"""
