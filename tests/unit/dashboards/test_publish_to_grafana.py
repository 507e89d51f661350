"""`kcloud dashboards publish` against a stand-in for Grafana's HTTP API: what Grafana would receive,
and that a second publish changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from grafana_standin import GrafanaState, grafana_standin
from typer.testing import CliRunner

from console.main import app
from dashboards.registry import DASHBOARDS, dashboard_json

DB_URL = "postgresql://grafana_ro:s3cret@db.example:5433/kcloud"


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    with grafana_standin() as served:
        yield served


def _publish(url: str, *extra: str, token: str = "glsa_test") -> tuple[int, str]:
    args = ["dashboards", "publish", "--url", url, "--token", token, "--database-url", DB_URL, *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_first_publish_creates_datasource_folder_and_every_dashboard(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    code, out = _publish(url, "--folder", "K-Cloud Observatory", "--no-timescaledb")

    assert code == 0, out
    assert out.splitlines() == [
        "datasource kcloud-postgres: created",
        "folder K-Cloud Observatory: created",
        *[f"dashboard {d.uid}: created" for d in DASHBOARDS],
    ]
    assert all(r.authorization == "Bearer glsa_test" for r in state.requests)
    source = state.datasources["kcloud-postgres"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["url"] == "db.example:5433"
    assert source["user"] == "grafana_ro"
    assert source["jsonData"]["database"] == "kcloud"
    assert source["jsonData"]["timescaledb"] is False
    assert source["secureJsonData"] == {"password": "s3cret"}
    folder_uid = next(iter(state.folders))
    assert state.folders[folder_uid]["title"] == "K-Cloud Observatory"
    posts = [r.body for r in state.requests if r.path == "/api/dashboards/db"]
    assert [p["dashboard"]["uid"] for p in posts] == [d.uid for d in DASHBOARDS]
    assert all(p["overwrite"] is True and p["folderUid"] == folder_uid for p in posts)
    assert posts[0]["dashboard"]["panels"] == dashboard_json(DASHBOARDS[0])["panels"]


def test_second_publish_reports_unchanged_and_writes_nothing(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    assert _publish(url, "--folder", "kcloud", "--no-timescaledb")[0] == 0
    writes = len(state.writes())

    code, out = _publish(url, "--folder", "kcloud", "--no-timescaledb")

    assert code == 0, out
    assert all(line.endswith(": unchanged") for line in out.splitlines()), out
    assert len(out.splitlines()) == 2 + len(DASHBOARDS)
    assert len(state.writes()) == writes


def test_a_dashboard_changed_in_grafana_and_a_new_flag_are_put_back(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    assert _publish(url, "--no-timescaledb")[0] == 0
    state.dashboards["kcloud-fleet"]["dashboard"]["title"] = "edited by hand"

    code, out = _publish(url, "--timescaledb")

    assert code == 0, out
    assert "datasource kcloud-postgres: updated" in out
    assert "dashboard kcloud-fleet: updated" in out
    assert "dashboard kcloud-drilldown: unchanged" in out
    assert state.dashboards["kcloud-fleet"]["dashboard"]["title"] == "kcloud / Fleet operations"
    assert state.dashboards["kcloud-fleet"]["dashboard"]["version"] == 2
    assert state.datasources["kcloud-postgres"]["jsonData"]["timescaledb"] is True


def test_a_refused_token_is_one_clear_error(grafana: tuple[str, GrafanaState]) -> None:
    url, _ = grafana
    code, out = _publish(url, "--no-timescaledb", token="wrong")
    assert code == 1
    assert "grafana: reading datasource kcloud-postgres failed: Unauthorized" in out
    assert "Traceback" not in out


def test_an_unreachable_grafana_is_one_clear_error() -> None:
    with grafana_standin() as (url, _):
        pass  # stopped: nothing listens there any more
    code, out = _publish(url, "--no-timescaledb")
    assert code == 1
    assert f"cannot reach Grafana at {url}" in out
    assert "Traceback" not in out
