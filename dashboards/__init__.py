"""Grafana as code: the project's dashboards, alert rules and provisioning files, built from Python.

The dashboards read PostgreSQL (plain or TimescaleDB) through Grafana's PostgreSQL datasource with raw
SQL. `dashboards.registry.DASHBOARDS` lists them; `kcloud dashboards build` writes their JSON and the
provisioning YAML to `infra/grafana/provisioning/`, `kcloud dashboards publish` pushes them to a Grafana
through its HTTP API. `dashboards.macros` expands Grafana's SQL macros the way the datasource does, so
every panel's query can be run and checked against a real database.

A stage: imports only the core (`kcloud`).
"""

from dashboards.registry import DASHBOARDS, dashboard_json, dashboard_jsons
from dashboards.spec import DashboardSpec, PanelSpec, VariableSpec

__all__ = ["DASHBOARDS", "DashboardSpec", "PanelSpec", "VariableSpec", "dashboard_json", "dashboard_jsons"]
