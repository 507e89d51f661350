"""The "kcloud pipeline" dashboard reads only metrics the components document and serve, over the
provisioned Prometheus datasource, and no rate of samples or snapshots is shown as requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dashboards.pipeline import PIPELINE, PROMETHEUS_UID, PromPanel, metric_names, render_pipeline
from dashboards.provisioning import PROMETHEUS_ENV, build_files
from dashboards.registry import DASHBOARDS

ROOT = Path(__file__).resolve().parents[3]
#: what a histogram or counter family adds to the names README.md lists
_SERIES = ("_bucket", "_sum", "_count")


def _documented() -> set[str]:
    return set(re.findall(r"`(kcloud_(?:worker|gateway|collector)_[a-z_]+)", (ROOT / "README.md").read_text()))


@pytest.mark.parametrize("panel", PIPELINE.panels, ids=lambda p: p.title)
def test_every_query_names_a_documented_metric(panel: PromPanel) -> None:
    documented = _documented()
    names = metric_names(panel)
    assert names, f"{panel.title}: no kcloud metric in its queries"
    for name in names:
        family = next((name.removesuffix(s) for s in _SERIES if name.endswith(s)), name)
        assert name in documented or family in documented, f"{panel.title}: {name} is not listed in README.md"
        if name.endswith("_bucket"):
            assert "histogram_quantile(" in " ".join(e for e, _ in panel.queries)


def test_the_dashboard_covers_every_worker_metric_the_issue_names() -> None:
    read = set().union(*(metric_names(p) for p in PIPELINE.panels))
    for needed in (
        "kcloud_worker_consumer_lag_messages",
        "kcloud_worker_samples_stored_total",
        "kcloud_worker_dead_letters_total",
        "kcloud_worker_batch_write_seconds_bucket",
        "kcloud_worker_db_retries_total",
        "kcloud_worker_ledger_appends_total",
        "kcloud_worker_alerts_total",
    ):
        assert needed in read


def test_rates_of_samples_or_snapshots_are_not_shown_as_requests() -> None:
    panels = [(p.title, p.unit, " ".join(e for e, _ in p.queries)) for p in PIPELINE.panels]
    panels += [(p.title, p.unit or "", p.sql) for d in DASHBOARDS for p in d.panels]
    for title, unit, query in panels:
        if unit == "reqps":
            assert "requests" in query, f"{title}: shown as req/s but counts no requests"
    stored = next(p for p in PIPELINE.panels if p.title == "Samples stored per second")
    assert stored.unit == "suffix: samples/s"


def test_every_panel_and_target_uses_the_provisioned_prometheus_datasource() -> None:
    model = render_pipeline()
    assert model["uid"] == "kcloud-pipeline" and model["title"] == "kcloud pipeline"
    for panel in model["panels"]:
        assert panel["datasource"]["uid"] == PROMETHEUS_UID
        assert panel["targets"] and all(t["datasource"]["uid"] == PROMETHEUS_UID for t in panel["targets"])
        assert panel["fieldConfig"]["defaults"]["unit"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    files = build_files(timescaledb=False)
    assert "dashboards/kcloud/kcloud-pipeline.json" in files
    sources = yaml.safe_load(files["datasources/kcloud.yaml"])["datasources"]
    prometheus = next(s for s in sources if s["uid"] == PROMETHEUS_UID)
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "${" + PROMETHEUS_ENV + "}"
