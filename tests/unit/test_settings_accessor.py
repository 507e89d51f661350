"""Every command group reads the settings in force through the one accessor: the root command's
`--config` reaches the dashboards group as it reaches the others (it once read only the defaults)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from console.main import app


def test_the_root_config_reaches_the_dashboards_group(tmp_path: Path) -> None:
    config = tmp_path / "kcloud.toml"
    config.write_text('sample_interval_s = "not a number"\n')
    result = CliRunner().invoke(app, ["--config", str(config), "dashboards", "build", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "configuration error" in result.output and "sample_interval_s" in result.output
