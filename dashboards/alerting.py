"""Grafana alert rules for the fleet, as a provisioning file: silent nodes, failed devices, ingest lag.

Each rule is one SQL query on the project's datasource and a threshold expression. The node and device
rules return one row per node or device (string columns become the alert instance's labels), so each
silent node and each failed device is its own alert; no rows means nothing is wrong (state OK).
There is no `$` anywhere in the file: Grafana expands environment variables in provisioning files, so
the annotations use `.Labels` and `.Values` rather than `$labels` and `$values`.

Example:
    >>> [r.uid for r in ALERT_RULES]
    ['kcloud-silent-node', 'kcloud-failed-device', 'kcloud-ingest-lag']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.sqlparts import SILENT_AFTER_S
from dashboards.sqlquery import DATASOURCE_UID

__all__ = ["ALERT_FOLDER", "ALERT_RULES", "AlertRule", "alert_rules_document"]

ALERT_FOLDER = "kcloud"
INGEST_LAG_ALERT_S = 300.0


@dataclass(frozen=True)
class AlertRule:
    """One rule: `sql` returns label columns and one numeric column `value_column`; the rule fires for a
    row whose value is above `above` for `for_` (Grafana duration)."""

    uid: str
    title: str
    summary: str
    description: str
    sql: str
    columns: tuple[str, ...]
    value_column: str
    above: float
    severity: str
    for_: str = "2m"
    no_data: str = "OK"


SILENT_NODE = AlertRule(
    uid="kcloud-silent-node",
    title="Silent node",
    summary="Node {{ .Labels.node }} at {{ .Labels.site }} has sent nothing for {{ .Values.A.Value }} s",
    description=(
        f"A node in service sent no snapshot for more than {SILENT_AFTER_S:g} s (event time): its collector, its "
        "network or the node itself is down. Check the node's collector agent and its spool."
    ),
    sql=f"""SELECT n.node_id AS node, n.site_id AS site, extract(epoch FROM now() - n.last_seen) AS silent_s
FROM nodes n
WHERE n.last_seen < now() - interval '{SILENT_AFTER_S:g} seconds'
  AND EXISTS (SELECT 1 FROM devices d WHERE d.node_id = n.node_id
              AND d.status NOT IN ('returned', 'decommissioned'))""",
    columns=("node", "site", "silent_s"),
    value_column="silent_s",
    above=SILENT_AFTER_S,
    severity="warning",
)

FAILED_DEVICE = AlertRule(
    uid="kcloud-failed-device",
    title="Failed device",
    summary="Device {{ .Labels.device }} on {{ .Labels.node }} ({{ .Labels.vendor }}) reports failed health",
    description=(
        "A device in service last reported health 'failed' (devices.health): the vendor's own health check "
        "says it cannot run work. Drain the node and open a vendor case."
    ),
    sql="""SELECT d.device_uuid AS device, d.node_id AS node, n.site_id AS site, d.vendor_id AS vendor,
       d.model AS model, 1 AS failed
FROM devices d JOIN nodes n ON n.node_id = d.node_id
JOIN health_states h ON h.code = d.health
WHERE h.name = 'failed' AND d.status NOT IN ('returned', 'decommissioned')""",
    columns=("device", "node", "site", "vendor", "model", "failed"),
    value_column="failed",
    above=0,
    severity="critical",
    for_="0s",
)

INGEST_LAG = AlertRule(
    uid="kcloud-ingest-lag",
    title="Ingest lag",
    summary="The newest stored snapshot is {{ .Values.A.Value }} s old",
    description=(
        f"No snapshot newer than {INGEST_LAG_ALERT_S:g} s reached the database (now() - max(nodes.last_seen)): "
        "the collectors, Kafka or the stream workers have stopped. Check `kcloud infra status` and the "
        "workers' counters."
    ),
    sql="SELECT extract(epoch FROM now() - max(n.last_seen)) AS lag_s FROM nodes n",
    columns=("lag_s",),
    value_column="lag_s",
    above=INGEST_LAG_ALERT_S,
    severity="critical",
    no_data="Alerting",
)

ALERT_RULES: tuple[AlertRule, ...] = (SILENT_NODE, FAILED_DEVICE, INGEST_LAG)


def _rule(rule: AlertRule) -> dict[str, Any]:
    query = {
        "refId": "A",
        "datasource": {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID},
        "editorMode": "code",
        "format": "table",
        "rawQuery": True,
        "rawSql": rule.sql,
    }
    threshold = {
        "refId": "C",
        "type": "threshold",
        "datasource": {"type": "__expr__", "uid": "__expr__"},
        "expression": "A",
        "conditions": [{"evaluator": {"type": "gt", "params": [rule.above]}}],
    }
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": query,
            },
            {"refId": "C", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__", "model": threshold},
        ],
        "noDataState": rule.no_data,
        "execErrState": "Error",
        "for": rule.for_,
        "annotations": {"summary": rule.summary, "description": rule.description},
        "labels": {"severity": rule.severity, "service": "kcloud"},
        "isPaused": False,
    }


def alert_rules_document() -> dict[str, Any]:
    """Grafana's alerting provisioning document (`apiVersion: 1`, one group evaluated every minute)."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "kcloud-fleet",
                "folder": ALERT_FOLDER,
                "interval": "1m",
                "rules": [_rule(r) for r in ALERT_RULES],
            }
        ],
    }
