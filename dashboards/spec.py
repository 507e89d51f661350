"""The declarative shape of a dashboard: variables, panels (with their SQL and the columns it returns)
and the dashboard around them. `dashboards.render` turns a spec into grafana-foundation-sdk builders.

Every panel declares the columns its query returns (`columns`), so the integration tests can run every
panel's SQL against a migrated, filled database and check it gives the panel what it expects; a panel
whose query may rightly return no rows on a fresh fleet says why in `empty_ok`.

Example:
    >>> PanelSpec(title="t", description="d", sql="SELECT 1 AS one", columns=("one",)).viz
    'table'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ALL_VALUE", "DashboardSpec", "PanelSpec", "Threshold", "VariableSpec", "Viz"]

#: the value a multi-value variable takes for "All": filters are written `(col IN ($v) OR '__all' IN ($v))`,
#: so "All" needs no list of every value (and works while the list is still empty)
ALL_VALUE = "'__all'"

Viz = Literal["timeseries", "stat", "table", "piechart", "bargauge"]
#: (value the step starts at, None for the base step; colour)
Threshold = tuple[float | None, str]


@dataclass(frozen=True)
class VariableSpec:
    """A template variable. `query` is SQL for `kind="query"`, comma-separated values for `custom`,
    the value itself for `constant` (constants are hidden)."""

    name: str
    label: str
    description: str
    query: str
    kind: Literal["query", "custom", "constant"] = "query"
    multi: bool = True
    include_all: bool = True

    @property
    def all_value(self) -> str | None:
        return ALL_VALUE if self.include_all else None


@dataclass(frozen=True)
class PanelSpec:
    """One panel: what it shows (`title`, `description`), how (`viz`, `unit`, `thresholds`), and the
    SQL with the `columns` it returns (in order). `fmt` is the datasource's result format."""

    title: str
    description: str
    sql: str
    columns: tuple[str, ...]
    viz: Viz = "table"
    fmt: Literal["time_series", "table"] = "table"
    unit: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    width: int = 12
    height: int = 8
    interval: str | None = None
    max_data_points: int = 500
    empty_ok: str | None = None


@dataclass(frozen=True)
class DashboardSpec:
    """A dashboard: a stable `uid` (the file name and the key Grafana updates by), its variables and
    panels in reading order (laid out left to right, top to bottom on Grafana's 24-column grid)."""

    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    variables: tuple[VariableSpec, ...]
    panels: tuple[PanelSpec, ...]
    time_from: str = "now-6h"
    refresh: str = "1m"
    links: tuple[str, ...] = field(default=())
