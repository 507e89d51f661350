"""`kcloud dashboards build`: writes the provisioning files, says what changed, `--check` fails on stale
output, and without a reachable database it asks for the TimescaleDB flag instead of guessing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from typer.testing import CliRunner

from console.main import app
from dashboards.registry import DASHBOARDS


def _build(out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", str(out), *extra])
    return result.exit_code, result.output


def test_build_writes_datasource_provider_dashboards_and_alerts(tmp_path: Path) -> None:
    code, out = _build(tmp_path, "--timescaledb")
    assert code == 0, out
    source = yaml.safe_load((tmp_path / "datasources/kcloud.yaml").read_text())["datasources"][0]
    assert source["jsonData"]["timescaledb"] is True
    assert source["url"] == "${GRAFANA_KCLOUD_DB_HOST}"
    provider = yaml.safe_load((tmp_path / "dashboards/kcloud.yaml").read_text())["providers"][0]
    assert provider["options"]["path"].endswith("/dashboards/kcloud")
    for spec in DASHBOARDS:
        board = json.loads((tmp_path / f"dashboards/kcloud/{spec.uid}.json").read_text())
        assert board["uid"] == spec.uid and len(board["panels"]) == len(spec.panels)
    pipeline = json.loads((tmp_path / "dashboards/kcloud/kcloud-pipeline.json").read_text())
    assert pipeline["title"] == "kcloud pipeline"
    assert (tmp_path / "alerting/kcloud-alerts.yaml").is_file()
    assert "9 changed" in out


def test_building_again_changes_nothing_and_check_passes(tmp_path: Path) -> None:
    assert _build(tmp_path, "--no-timescaledb")[0] == 0
    code, out = _build(tmp_path, "--no-timescaledb")
    assert code == 0 and "0 changed" in out
    assert _build(tmp_path, "--no-timescaledb", "--check")[0] == 0


def test_check_fails_on_stale_or_extra_files_and_writes_nothing(tmp_path: Path) -> None:
    assert _build(tmp_path, "--no-timescaledb")[0] == 0
    stale = tmp_path / "dashboards/kcloud/kcloud-fleet.json"
    stale.write_text("{}")
    (tmp_path / "dashboards/kcloud/old-board.json").write_text("{}")

    code, out = _build(tmp_path, "--no-timescaledb", "--check")

    assert code == 1
    assert "out of date (updated)" in out and "kcloud-fleet.json" in out
    assert "out of date (removed)" in out and "old-board.json" in out
    assert stale.read_text() == "{}"


def test_without_a_reachable_database_the_flag_is_asked_for(tmp_path: Path) -> None:
    env = {**os.environ, "KCLOUD_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    env.pop("KCLOUD_TEST_STACK", None)
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "pass --timescaledb / --no-timescaledb" in result.output
    assert not (tmp_path / "datasources").exists()
