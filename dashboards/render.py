"""Spec → grafana-foundation-sdk builders → the dashboard JSON Grafana stores.

Panels are laid out in reading order on Grafana's 24-column grid (a panel that does not fit on the row
starts the next one) and numbered from 1. Every panel gets the project's PostgreSQL datasource and one
raw-SQL target; table and category panels show every row (no reduction).

Example:
    >>> from dashboards.fleet import FLEET
    >>> render_dashboard(FLEET)["uid"]
    'kcloud-fleet'
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import piechart as pie_model

from dashboards.spec import DashboardSpec, PanelSpec, VariableSpec
from dashboards.sqlquery import DATASOURCE_REF, SqlQuery

__all__ = ["GRID_WIDTH", "render_dashboard", "render_panel", "render_variable"]

GRID_WIDTH = 24
PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | piechart.Panel | bargauge.Panel


def _thresholds(spec: PanelSpec) -> dash.ThresholdsConfig:
    steps = spec.thresholds or ((None, "green"),)
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def _all_rows() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().values(True).calcs([])


def _builder(spec: PanelSpec) -> PanelBuilder:
    if spec.viz == "timeseries":
        return timeseries.Panel().line_width(1).fill_opacity(10).show_points(common_model.VisibilityMode.NEVER)
    if spec.viz == "stat":
        return stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
    if spec.viz == "piechart":
        return piechart.Panel().reduce_options(_all_rows()).pie_type(pie_model.PieChartType.DONUT)
    if spec.viz == "bargauge":
        return (
            bargauge.Panel()
            .reduce_options(_all_rows())
            .orientation(common_model.VizOrientation.HORIZONTAL)
            .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        )
    return table.Panel()


def render_panel(spec: PanelSpec, panel_id: int, x: int, y: int) -> PanelBuilder:
    """The SDK builder of one panel at grid position (x, y)."""
    target = SqlQuery().ref_id("A").raw_sql(spec.sql).format(spec.fmt)
    panel = (
        _builder(spec)
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE_REF)
        .with_target(target)
        .grid_pos(model.GridPos(h=spec.height, w=spec.width, x=x, y=y))
        .thresholds(_thresholds(spec))
        .max_data_points(spec.max_data_points)
    )
    if spec.unit is not None:
        panel.unit(spec.unit)
    if spec.min is not None:
        panel.min(spec.min)
    if spec.max is not None:
        panel.max(spec.max)
    if spec.decimals is not None:
        panel.decimals(spec.decimals)
    if spec.interval is not None:
        panel.interval(spec.interval)
    return panel


def render_variable(spec: VariableSpec) -> dash.QueryVariable | dash.CustomVariable | dash.ConstantVariable:
    """The SDK builder of one template variable."""
    if spec.kind == "constant":
        return dash.ConstantVariable(spec.name).label(spec.label).description(spec.description).value(spec.query)
    all_option = (
        model.VariableOption(selected=True, text=["All"], value=["$__all"])
        if spec.multi
        else model.VariableOption(selected=True, text="All", value="$__all")
    )
    if spec.kind == "custom":
        values = [v.strip() for v in spec.query.split(",")]
        variable: dash.QueryVariable | dash.CustomVariable = (
            dash.CustomVariable(spec.name)
            .values(spec.query)
            .options([model.VariableOption(selected=False, text=v, value=v) for v in values])
        )
    else:
        variable = (
            dash.QueryVariable(spec.name)
            .query(spec.query)
            .datasource(DATASOURCE_REF)
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )
    variable.label(spec.label).description(spec.description).multi(spec.multi).include_all(spec.include_all)
    if spec.all_value is not None:
        variable.all_value(spec.all_value)
    if spec.include_all:
        variable.current(all_option)
    return variable


def _layout(panels: tuple[PanelSpec, ...]) -> list[tuple[PanelSpec, int, int]]:
    placed: list[tuple[PanelSpec, int, int]] = []
    x = y = row_height = 0
    for spec in panels:
        if x + spec.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append((spec, x, y))
        x += spec.width
        row_height = max(row_height, spec.height)
    return placed


def render_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a plain dict, ready for a file or the HTTP API)."""
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
    for variable in spec.variables:
        board.with_variable(render_variable(variable))
    for number, (panel, x, y) in enumerate(_layout(spec.panels), start=1):
        board.with_panel(render_panel(panel, number, x, y))
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return encoded
