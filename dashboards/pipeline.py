"""The "kcloud pipeline" dashboard: the pipeline watching itself, from the components' own Prometheus metrics
(stream workers, vendor gateway, collector agents; README.md lists every metric).

Unlike the other dashboards, which read PostgreSQL with SQL, its panels query a Prometheus that scrapes the
components (datasource `kcloud Prometheus`, uid `kcloud-prometheus`) with PromQL. Each panel declares its
queries as (PromQL, legend) pairs; the unit tests check that every metric a query names is one the
components document and serve. `dashboards.provisioning` writes it beside the others.

Example:
    >>> render_pipeline()["uid"]
    'kcloud-pipeline'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import common, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = [
    "PIPELINE",
    "PROMETHEUS_NAME",
    "PROMETHEUS_TYPE",
    "PROMETHEUS_UID",
    "PipelineDashboard",
    "PromPanel",
    "metric_names",
    "render_pipeline",
]

PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "kcloud-prometheus"
PROMETHEUS_NAME = "kcloud Prometheus"
PROMETHEUS_REF = DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)
GRID_WIDTH = 24
#: a rate of device samples; Grafana's `reqps` would say "req/s"
SAMPLES_PER_S = "suffix: samples/s"
SNAPSHOTS_PER_S = "suffix: snapshots/s"
PER_S = "suffix: /s"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class PromPanel:
    """One panel over Prometheus: its queries as (PromQL, legend) pairs, how to show them."""

    title: str
    description: str
    queries: tuple[tuple[str, str], ...]
    unit: str
    viz: Literal["timeseries", "stat"] = "timeseries"
    width: int = 12
    height: int = 8
    min: float | None = 0


@dataclass(frozen=True)
class PipelineDashboard:
    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    panels: tuple[PromPanel, ...]
    time_from: str = "now-3h"
    refresh: str = "30s"


def _quantiles(metric: str, by: str = "") -> tuple[tuple[str, str], ...]:
    group = f"le{', ' + by if by else ''}"
    legend = f"{{{{{by}}}}} " if by else ""
    return tuple(
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))", f"{legend}p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    )


PANELS: tuple[PromPanel, ...] = (
    PromPanel(
        "Workers and partitions held",
        "Stream workers reporting, and the telemetry partitions they hold between them: the partitions held "
        "should equal the topic's partitions (KCLOUD_KAFKA_PARTITIONS); fewer means a worker is gone and its "
        "partitions wait for the group to rebalance.",
        (
            ("count(kcloud_worker_assigned_partitions)", "workers"),
            ("sum(kcloud_worker_assigned_partitions)", "partitions held"),
        ),
        unit="short",
        viz="stat",
        width=6,
    ),
    PromPanel(
        "Samples stored per second",
        "Device samples the stream workers stored per second, all workers together (a replayed sample is not "
        "counted again): the ingest's throughput as it happens. It falls to 0 when collectors stop or the "
        "ingest is stuck.",
        (
            (f"sum(rate(kcloud_worker_samples_stored_total[{RATE}]))", "stored"),
            (f"sum(rate(kcloud_worker_samples_received_total[{RATE}]))", "received in valid snapshots"),
        ),
        unit=SAMPLES_PER_S,
        width=18,
    ),
    PromPanel(
        "Consumer lag per partition",
        "Telemetry records each partition holds that its worker has not stored yet (end offset minus position). "
        "A lag that keeps growing means the workers do not keep up: start another `kcloud streams worker`.",
        (("sum by (partition) (kcloud_worker_consumer_lag_messages)", "partition {{partition}}"),),
        unit="short",
    ),
    PromPanel(
        "Dead letters by reason",
        "Records the workers dead-lettered on kcloud.deadletter.v1 per interval, by reason (invalid_json, "
        "unknown_schema, invalid_field, key_mismatch, database_rejected ...): input that could not be stored.",
        ((f"sum by (reason) (increase(kcloud_worker_dead_letters_total[{RATE}]))", "{{reason}}"),),
        unit="short",
    ),
    PromPanel(
        "Batch write latency",
        "Time of one batch's database write in the stream workers (p50, p95, p99), retries included: it rises "
        "when the database is slow or away.",
        _quantiles("kcloud_worker_batch_write_seconds"),
        unit="s",
    ),
    PromPanel(
        "Database retries and refused writes",
        "Writes retried because the database was away, and writes it refused deterministically (the batch is "
        "halved until the snapshot at fault is dead-lettered), per second.",
        (
            (f"sum(rate(kcloud_worker_db_retries_total[{RATE}]))", "retries"),
            (f"sum(rate(kcloud_worker_db_rejected_writes_total[{RATE}]))", "refused writes"),
        ),
        unit=PER_S,
    ),
    PromPanel(
        "Ledger appends and alerts",
        "Deployment events the workers appended to the ledger, and alert transitions (opened, resolved) they "
        "published, per interval.",
        (
            (f"sum(increase(kcloud_worker_ledger_appends_total[{RATE}]))", "ledger appends"),
            (f"sum(increase(kcloud_worker_alerts_total[{RATE}]))", "alert transitions"),
        ),
        unit="short",
    ),
    PromPanel(
        "Gateway requests by status",
        "Requests to the vendor gateway's /v1 API per second, by HTTP status: 202 accepted, 4xx refused with a "
        "reason, 503 when Kafka did not acknowledge.",
        ((f"sum by (status) (rate(kcloud_gateway_requests_total[{RATE}]))", "{{status}}"),),
        unit="reqps",
    ),
    PromPanel(
        "Gateway snapshots by vendor and outcome",
        "Snapshots vendors pushed per second, by token vendor and outcome (accepted: acknowledged by Kafka).",
        ((f"sum by (vendor, outcome) (rate(kcloud_gateway_snapshots_total[{RATE}]))", "{{vendor}} {{outcome}}"),),
        unit=SNAPSHOTS_PER_S,
    ),
    PromPanel(
        "Gateway latency",
        "Time to answer a /v1 request (p50, p95, p99), Kafka acknowledgement included.",
        _quantiles("kcloud_gateway_request_seconds"),
        unit="s",
    ),
    PromPanel(
        "Gateway Kafka and audit failures",
        "Pushes answered 503 because Kafka did not acknowledge them, and requests whose ingest_audit row could "
        "not be written (see the gateway log), per second: both should stay at 0.",
        (
            (f"sum(rate(kcloud_gateway_kafka_failures_total[{RATE}]))", "Kafka failures"),
            (f"sum(rate(kcloud_gateway_audit_failures_total[{RATE}]))", "audit failures"),
        ),
        unit=PER_S,
    ),
    PromPanel(
        "Collector deliveries",
        "Snapshots each collector agent had acknowledged by Kafka per second, and its failed sends (spooled).",
        (
            (f"sum by (instance) (rate(kcloud_collector_delivered_total[{RATE}]))", "{{instance}} delivered"),
            (f"sum by (instance) (rate(kcloud_collector_delivery_failures_total[{RATE}]))", "{{instance}} failed"),
        ),
        unit=SNAPSHOTS_PER_S,
    ),
    PromPanel(
        "Collector spools",
        "Snapshots waiting on a node's disk for Kafka, and those dropped from a full spool (data lost) per "
        "interval. A spool above 0 for minutes means that node cannot reach Kafka.",
        (
            ("sum by (instance) (kcloud_collector_spool_depth_records)", "{{instance}} waiting"),
            (f"sum by (instance) (increase(kcloud_collector_spool_dropped_total[{RATE}]))", "{{instance}} dropped"),
        ),
        unit="short",
    ),
    PromPanel(
        "Collector ticks skipped and samples read",
        "Device samples each agent read per second, and ticks it skipped (source unreachable, no devices).",
        (
            (f"sum by (source) (rate(kcloud_collector_samples_read_total[{RATE}]))", "{{source}} samples read"),
            (
                f'sum by (source) (rate(kcloud_collector_ticks_total{{outcome="skipped"}}[{RATE}]))',
                "{{source}} ticks skipped",
            ),
        ),
        unit=PER_S,
    ),
    PromPanel(
        "Collector produce latency",
        "Time from a collector's send to the broker's acknowledgement (p50, p95, p99).",
        _quantiles("kcloud_collector_produce_latency_seconds"),
        unit="s",
    ),
)

PIPELINE = PipelineDashboard(
    uid="kcloud-pipeline",
    title="kcloud pipeline",
    description=(
        "The pipeline observing itself: stream workers (throughput, lag, dead letters, write latency, retries, "
        "ledger, alerts), vendor gateway and collector agents, from their Prometheus /metrics."
    ),
    tags=("kcloud", "operations", "prometheus"),
    panels=PANELS,
)

_METRIC = re.compile(r"\b(kcloud_[a-z_]+)")


def metric_names(panel: PromPanel) -> set[str]:
    """The metric names a panel's queries read (as Prometheus stores them, e.g. `..._bucket`)."""
    return {name for expr, _ in panel.queries for name in _METRIC.findall(expr)}


def _panel(spec: PromPanel, panel_id: int, x: int, y: int) -> timeseries.Panel | stat.Panel:
    builder: timeseries.Panel | stat.Panel
    if spec.viz == "stat":
        builder = stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
    else:
        builder = timeseries.Panel().line_width(1).fill_opacity(10).show_points(common_model.VisibilityMode.NEVER)
    builder.id(panel_id).title(spec.title).description(spec.description).datasource(PROMETHEUS_REF).unit(spec.unit)
    builder.grid_pos(model.GridPos(h=spec.height, w=spec.width, x=x, y=y))
    if spec.min is not None:
        builder.min(spec.min)
    for i, (expr, legend) in enumerate(spec.queries):
        target = prometheus.Dataquery().ref_id(chr(ord("A") + i)).expr(expr).legend_format(legend).range()
        builder.with_target(target.datasource(PROMETHEUS_REF))
    return builder


def render_pipeline(spec: PipelineDashboard = PIPELINE) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .time(spec.time_from, "now")
        .refresh(spec.refresh)
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )
    x = y = row_height = 0
    for number, panel in enumerate(spec.panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        board.with_panel(_panel(panel, number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return encoded
