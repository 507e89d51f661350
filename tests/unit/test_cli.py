"""The `kcloud` command teaches: every subcommand is listed with its purpose, errors are one line."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from kcloud.cli import app

runner = CliRunner()


def test_help_lists_every_subcommand_with_a_purpose() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("infra", "db", "streams", "demo", "config"):
        line = next((ln for ln in result.output.splitlines() if f" {name} " in ln), "")
        assert line, f"{name} missing from --help"
        assert len(line.split(name, 1)[1].strip()) > 10, f"{name} has no purpose line"


def test_infra_help_lists_up_down_status() -> None:
    result = runner.invoke(app, ["infra", "--help"])
    assert result.exit_code == 0
    for name in ("up", "down", "status"):
        assert f" {name} " in result.output


def test_config_show_names_every_environment_variable() -> None:
    result = runner.invoke(app, ["config", "show"], env={})
    assert result.exit_code == 0
    assert "KCLOUD_DATABASE_URL" in result.output
    assert "KCLOUD_KAFKA_BOOTSTRAP" in result.output


def test_configuration_error_is_one_clear_line_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kcloud.cli", "config", "show"],
        env={"KCLOUD_NO_SUCH_KEY": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "KCLOUD_NO_SUCH_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr
