"""Every panel's SQL, expanded as Grafana's PostgreSQL datasource would, runs on plain PostgreSQL filled
by the real pipeline code and returns the columns the panel expects (and rows, unless the panel says why
it may be empty), with its variables on All and on a selection, at minute, hourly and daily resolution.
The alert rules' queries run too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fleet_db import FilledDb
from panel_checks import PANEL_IDS, PANELS, WINDOWS, check_panel_in_every_window, panel_result, run

from dashboards.alerting import ALERT_RULES, AlertRule
from dashboards.registry import dashboard_jsons
from dashboards.spec import DashboardSpec, PanelSpec


@pytest.fixture(scope="module")
def conn(filled_plain: FilledDb) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(filled_plain.url, autocommit=True) as c:
        yield c


@pytest.mark.parametrize(("board", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_query_returns_the_columns_it_shows(
    board: DashboardSpec, panel: PanelSpec, filled_plain: FilledDb, conn: psycopg.Connection[Any]
) -> None:
    check_panel_in_every_window(
        conn,
        board,
        panel,
        data_start=filled_plain.start,
        data_end=filled_plain.end,
        timescaledb=filled_plain.timescaledb,
    )


def test_every_rendered_panel_query_is_one_the_tests_run() -> None:
    tested = {p.sql for _, p in PANELS}
    rendered = [
        (uid, panel["title"], target["rawSql"])
        for uid, board in dashboard_jsons().items()
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]
    assert rendered, "no panel was rendered"
    assert [(u, t) for u, t, sql in rendered if sql not in tested] == []


def test_time_series_panels_put_each_series_on_event_time(
    filled_plain: FilledDb, conn: psycopg.Connection[Any]
) -> None:
    """The utilization panel's buckets lie inside the data's event-time range and its values are percents."""
    board, panel = next((d, p) for d, p in PANELS if p.title == "Utilization by site and vendor")
    _, rows, _ = panel_result(
        conn, board, panel, WINDOWS[0], data_end=filled_plain.end, data_start=filled_plain.start, timescaledb=False
    )
    times = [float(r[0]) for r in rows]
    assert min(times) >= filled_plain.start.timestamp() - 60
    assert max(times) <= filled_plain.end.timestamp()
    assert all(0 <= r[2] <= 100 for r in rows)
    assert len({r[1] for r in rows}) >= 3  # several site / vendor series


def test_silent_nodes_panel_names_the_nodes_that_stopped(filled_plain: FilledDb, conn: psycopg.Connection[Any]) -> None:
    board, panel = next((d, p) for d, p in PANELS if p.title == "Silent nodes")
    _, rows, _ = panel_result(
        conn, board, panel, WINDOWS[0], data_end=filled_plain.end, data_start=filled_plain.start, timescaledb=False
    )
    assert sorted(r[0] for r in rows) == ["dash-000000", "dash-000001"]


def test_evidence_panels_count_only_domestic_cards(filled_plain: FilledDb, conn: psycopg.Connection[Any]) -> None:
    board, panel = next((d, p) for d, p in PANELS if p.title == "Service hours and availability by vendor and site")
    _, rows, _ = panel_result(
        conn, board, panel, WINDOWS[0], data_end=filled_plain.end, data_start=filled_plain.start, timescaledb=False
    )
    _, domestic = run(conn, "SELECT vendor_id FROM vendors WHERE domestic")
    assert {r[0] for r in rows} <= {d[0] for d in domestic}
    assert all(0 < r[4] <= 100.5 for r in rows), rows  # availability in percent
    # the two silent nodes hold 16 of the 32 FuriosaAI cards at their site and missed 15 of the 90 minutes
    furiosa = next(r for r in rows if r[0] == "furiosa")
    assert furiosa[2] == 32
    assert furiosa[4] == pytest.approx(100 * (1 - 16 * 15 / (32 * 90)), abs=0.5)


@pytest.mark.parametrize("rule", ALERT_RULES, ids=[r.uid for r in ALERT_RULES])
def test_alert_rule_query_runs_and_returns_its_columns(rule: AlertRule, conn: psycopg.Connection[Any]) -> None:
    names, _ = run(conn, rule.sql)
    assert tuple(names) == rule.columns
    assert rule.value_column in names
