"""The dashboards as written: every panel described, with a unit where it shows numbers, and its SQL
referring only to tables and columns the migrations create and metrics the catalogue declares; the
committed provisioning files are what the code builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dashboards.alerting import ALERT_RULES
from dashboards.provisioning import DEFAULT_OUT, build_files, stale_files
from dashboards.registry import DASHBOARDS, dashboard_jsons
from dashboards.spec import PanelSpec
from dashboards.sqlparts import ROLLUP_CTE
from kcloud.catalog import load_catalog
from kcloud.db.schema import DEVICE_SAMPLE_COLUMNS, ROLLUP_COLUMNS

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = ROOT / "kcloud" / "db" / "migrations"
PANELS = [(d.uid, p) for d in DASHBOARDS for p in d.panels]
IDS = [f"{uid}/{p.title}" for uid, p in PANELS]
#: the CTEs the dashboards define, with the columns they expose (None: not checked column by column)
CTES: dict[str, set[str] | None] = {
    "r": {*ROLLUP_COLUMNS, "bucket_end"},
    "a": {*ROLLUP_COLUMNS, "bucket_end", "tenant"},
    "per_device": None,
    "due": None,
    "seen": None,
    "cur": None,
    "use": None,
    "hourly": None,
}


def migration_columns() -> dict[str, set[str]]:
    """Table → columns, read from the migration files (CREATE TABLE, LIKE, ALTER TABLE ADD COLUMN)."""
    tables: dict[str, set[str]] = {}
    text = "\n".join(p.read_text() for p in sorted(MIGRATIONS.rglob("*.sql")))
    text = re.sub(r"--[^\n]*", "", text)
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\)[^;\n]*;", text, re.S):
        cols = tables.setdefault(name, set())
        for raw in body.split("\n"):
            line = raw.strip()
            like = re.match(r"LIKE (\w+)", line)
            if like:
                cols |= tables[like.group(1)]
                continue
            word = re.match(r"(\w+)\s+(\w+)", line)
            if word and word.group(1).upper() not in ("PRIMARY", "CHECK", "CONSTRAINT", "UNIQUE", "FOREIGN"):
                cols.add(word.group(1))
    for table, body in re.findall(r"ALTER TABLE (\w+)\s+(ADD COLUMN.*?);", text, re.S):
        tables[table] |= set(re.findall(r"ADD COLUMN (\w+)", body))
    for view in re.findall(r"CREATE MATERIALIZED VIEW (\w+)", text):
        tables[view] = set(ROLLUP_COLUMNS)
    return tables


TABLES = migration_columns()


def _aliases(sql: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table, alias in re.findall(
        r"(?:FROM|JOIN)\s+(?!LATERAL\b)(\w+)\b(?!\s*\()(?:\s+(?:AS\s+)?(?!ON\b|WHERE\b|GROUP\b|JOIN\b)(\w+))?", sql
    ):
        found.setdefault(alias or table, set()).add(table)
        found.setdefault(table, set()).add(table)
    return found


def test_the_migrations_define_the_tables_the_dashboards_read() -> None:
    assert set(DEVICE_SAMPLE_COLUMNS) == TABLES["device_samples"]
    assert {"device_rollup_1m", "device_rollup_1h", "device_rollup_1d", "devices", "nodes", "alerts"} <= set(TABLES)
    assert {"status_since", "health"} <= TABLES["devices"]


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=IDS)
def test_panel_sql_refers_only_to_existing_tables_and_columns(uid: str, panel: PanelSpec) -> None:
    sql = panel.sql
    aliases = _aliases(sql)
    for tables in aliases.values():
        for table in tables:
            assert table in TABLES or table in CTES, f"{uid}/{panel.title}: no table or CTE {table!r}"
    for alias, column in re.findall(r"\b([a-z_]\w*)\.([a-z_]\w*)\b", sql):
        if alias not in aliases:
            continue
        known: set[str] = set()
        for table in aliases[alias]:
            cte = CTES.get(table, set()) if table in CTES else TABLES[table]
            if cte is None:
                known = {column}
                break
            known |= cte
        assert column in known, f"{uid}/{panel.title}: {alias}.{column} is not a column of {sorted(aliases[alias])}"


def test_rollup_cte_reads_the_rollup_columns_of_every_level() -> None:
    for level in ("device_rollup_1m", "device_rollup_1h", "device_rollup_1d"):
        assert f"FROM {level} " in ROLLUP_CTE
    for column in ROLLUP_COLUMNS:
        assert column in ROLLUP_CTE


def test_sample_columns_the_dashboards_read_are_catalogue_metrics() -> None:
    metrics = {m.name for m in load_catalog().metrics}
    keys = {"time", "device_id", "workload_id"}
    for uid, panel in PANELS:
        for alias, column in re.findall(r"\b(s)\.([a-z_]\w*)\b", panel.sql):
            if "device_samples" in _aliases(panel.sql).get(alias, set()) and column not in keys:
                assert column in metrics, f"{uid}/{panel.title}: s.{column} is not in kcloud/catalog.yaml"


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=IDS)
def test_every_panel_is_described_and_numbers_have_a_unit(uid: str, panel: PanelSpec) -> None:
    assert len(panel.description) >= 40, f"{uid}/{panel.title}: describe what the panel shows"
    if panel.viz != "table":
        assert panel.unit is not None, f"{uid}/{panel.title}: a {panel.viz} needs a unit"
    if panel.fmt == "time_series":
        assert panel.columns[:2] == ("time", "metric")


def test_dashboards_have_unique_uids_titles_and_panel_titles_and_share_variables() -> None:
    assert len({d.uid for d in DASHBOARDS}) == len(DASHBOARDS)
    for board in DASHBOARDS:
        titles = [p.title for p in board.panels]
        assert len(set(titles)) == len(titles), board.uid
        assert "site" in {v.name for v in board.variables}, board.uid
    rendered = dashboard_jsons()
    for uid, model in rendered.items():
        ids = [p["id"] for p in model["panels"]]
        assert len(set(ids)) == len(ids), uid
        assert all(p["description"] for p in model["panels"]), uid
        assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in model["panels"]), uid


def test_committed_provisioning_files_are_what_the_code_builds() -> None:
    out = ROOT / DEFAULT_OUT
    committed = yaml.safe_load((out / "datasources" / "kcloud.yaml").read_text())
    flag = committed["datasources"][0]["jsonData"]["timescaledb"]
    assert isinstance(flag, bool)
    files = build_files(timescaledb=flag)
    stale = [p for p, content in files.items() if not (out / p).is_file() or (out / p).read_text() != content]
    assert stale == [], "run `kcloud dashboards build` and commit infra/grafana/provisioning/"
    assert stale_files(out, files) == []


def test_datasource_timescaledb_flag_follows_the_build_flag() -> None:
    for flag in (True, False):
        doc = yaml.safe_load(build_files(timescaledb=flag)["datasources/kcloud.yaml"])
        assert doc["datasources"][0]["jsonData"]["timescaledb"] is flag


def test_alert_rules_cover_silent_nodes_failed_devices_and_ingest_lag_without_dollar_signs() -> None:
    text = build_files(timescaledb=False)["alerting/kcloud-alerts.yaml"]
    assert "$" not in text  # Grafana would expand it as an environment variable
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert [r["uid"] for r in rules] == [r.uid for r in ALERT_RULES]
    for rule in rules:
        assert rule["condition"] == "C"
        assert rule["data"][0]["model"]["rawSql"]
        assert rule["data"][1]["model"]["type"] == "threshold"


def test_the_column_check_catches_a_misspelt_column() -> None:
    wrong = PanelSpec(title="t", description="d", sql="SELECT d.stauts FROM devices d", columns=("stauts",))
    with pytest.raises(AssertionError, match=r"d\.stauts is not a column"):
        test_panel_sql_refers_only_to_existing_tables_and_columns("x", wrong)
