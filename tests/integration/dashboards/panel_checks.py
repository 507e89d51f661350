"""Running a dashboard panel's SQL the way Grafana would: variables resolved by running their own
queries, macros expanded by dashboards.macros, then the query run against a filled database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from dashboards.macros import QueryContext, Selection, expand
from dashboards.registry import DASHBOARDS
from dashboards.spec import DashboardSpec, PanelSpec

#: every (dashboard, panel) pair: the tests are generated from this, so a new panel is tested too
PANELS: list[tuple[DashboardSpec, PanelSpec]] = [(d, p) for d in DASHBOARDS for p in d.panels]
PANEL_IDS = [f"{d.uid}/{p.title}" for d, p in PANELS]


@dataclass(frozen=True)
class Window:
    """A dashboard time range to run a panel in, and whether its variables are "All" or a selection."""

    name: str
    span: timedelta | None  # None: the data's own range
    all_values: bool


WINDOWS = (
    Window("data range, All", None, True),
    Window("data range, one of each", None, False),
    Window("last 7 days (hourly rollups), All", timedelta(days=7), True),
    Window("last 400 days (daily rollups), All", timedelta(days=400), True),
)


def run(conn: psycopg.Connection[Any], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `sql`."""
    with conn.cursor() as cur:
        cur.execute(sql.encode())
        names = [c.name for c in cur.description or []]
        return names, cur.fetchall()


def selections(
    conn: psycopg.Connection[Any], board: DashboardSpec, start: datetime, end: datetime, all_values: bool
) -> dict[str, Selection]:
    """Each variable of `board` set as a user would: options from its own query (chained on the ones
    above it), then All or the first option (the first two for a multi-value one)."""
    chosen: dict[str, Selection] = {}
    for var in board.variables:
        if var.kind == "custom":
            options = tuple(v.strip() for v in var.query.split(","))
        elif var.kind == "constant":
            options = (var.query,)
        else:
            _, rows = run(conn, expand(var.query, QueryContext(start, end, chosen)))
            options = tuple(str(r[0]) for r in rows)
        if (all_values and var.include_all) or (var.include_all and not options):
            chosen[var.name] = Selection(var, None, options)
        else:
            assert options, f"variable {var.name} of {board.uid} has no options on the filled fleet"
            chosen[var.name] = Selection(var, options[: 2 if var.multi else 1], options)
    return chosen


def panel_result(
    conn: psycopg.Connection[Any],
    board: DashboardSpec,
    panel: PanelSpec,
    window: Window,
    *,
    data_end: datetime,
    data_start: datetime,
    timescaledb: bool,
) -> tuple[list[str], list[tuple[Any, ...]], str]:
    """The panel's columns and rows in `window`, and the SQL that gave them."""
    start = data_start if window.span is None else data_end - window.span
    variables = selections(conn, board, start, data_end, window.all_values)
    ctx = QueryContext(
        start,
        data_end,
        variables,
        max_data_points=panel.max_data_points,
        min_interval=panel.interval,
        timescaledb=timescaledb,
    )
    sql = expand(panel.sql, ctx)
    names, rows = run(conn, sql)
    return names, rows, sql


def check_panel_in_every_window(
    conn: psycopg.Connection[Any],
    board: DashboardSpec,
    panel: PanelSpec,
    *,
    data_start: datetime,
    data_end: datetime,
    timescaledb: bool,
) -> list[str]:
    """Run `panel` in every window of `WINDOWS`: it returns the columns it shows, and rows where its variables
    are on All (unless the panel says why it may be empty). Returns the SQL run, for further checks."""
    sqls: list[str] = []
    for window in WINDOWS:
        names, rows, sql = panel_result(
            conn, board, panel, window, data_end=data_end, data_start=data_start, timescaledb=timescaledb
        )
        assert tuple(names) == panel.columns, f"{window.name}:\n{sql}"
        if window.all_values and panel.empty_ok is None:
            assert rows, f"{window.name}: no rows from\n{sql}"
        sqls.append(sql)
    return sqls
