"""The project's dashboards, in the order operators meet them, and their JSON.

Example:
    >>> [d.uid for d in DASHBOARDS][:2]
    ['kcloud-fleet', 'kcloud-gpu-vs-npu']
"""

from __future__ import annotations

from typing import Any

from dashboards.allocation import ALLOCATION
from dashboards.drilldown import DRILLDOWN
from dashboards.evidence import EVIDENCE
from dashboards.fleet import FLEET
from dashboards.gpu_npu import GPU_NPU
from dashboards.render import render_dashboard
from dashboards.spec import DashboardSpec

__all__ = ["DASHBOARDS", "dashboard_json", "dashboard_jsons"]

DASHBOARDS: tuple[DashboardSpec, ...] = (FLEET, GPU_NPU, EVIDENCE, ALLOCATION, DRILLDOWN)


def dashboard_json(spec: DashboardSpec) -> dict[str, Any]:
    """Grafana's JSON model of one dashboard."""
    return render_dashboard(spec)


def dashboard_jsons() -> dict[str, dict[str, Any]]:
    """uid → JSON model of every dashboard."""
    return {spec.uid: render_dashboard(spec) for spec in DASHBOARDS}
