"""The `kcloud` command teaches: every subcommand is listed with its purpose, errors are one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from console.cli_help import GROUP_EXAMPLES, commands
from console.main import app
from kcloud import __version__

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
        [sys.executable, "-m", "console.main", "config", "show"],
        env={"KCLOUD_NO_SUCH_KEY": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "KCLOUD_NO_SUCH_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- help: defaults visible, an example everywhere, --version, completion ----------------------------------
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


def _help(*path: str) -> str:
    """`kcloud PATH --help` as one line of words (box drawing removed, wrapped lines joined)."""
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("demo",), "Stop after this many seconds. [default: (run until Ctrl-C)]"),
        (("demo",), "Simulated nodes (8 accelerators each). [default: 50]"),
        (("gateway",), "Address to listen on [default: KCLOUD_GATEWAY_HOST, 127.0.0.1]"),
        (("gateway",), "Port to listen on [default: KCLOUD_GATEWAY_PORT, 8470]"),
        (("vendor", "add"), "Name shown in reports [default: NAME]"),
        (("dashboards", "publish"), "PostgreSQL URL Grafana should query [default: the configured database]"),
        (("alerts",), "[default: 24h]"),
    ],
)
def test_help_shows_every_default_even_one_written_in_the_help_text(path: tuple[str, ...], shown: str) -> None:
    assert shown in _help(*path)


def _all_commands() -> list[tuple[str, ...]]:
    paths = [path for path, _ in commands(app)]
    paths += [(g.name,) for g in app.registered_groups if g.name in GROUP_EXAMPLES]
    return sorted(paths)


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_help_has_an_example_and_shows_its_defaults(path: tuple[str, ...]) -> None:
    text = _help(*path)
    assert re.search(r"Examples?: kcloud ", text), text[:300]
    command = typer.main.get_command(app)
    ctx = command.make_context("kcloud", [], resilient_parsing=True)
    for name in path:
        command = command.get_command(ctx, name)  # type: ignore[attr-defined]
    with_default = [
        p
        for p in command.params
        if getattr(p, "help", None) and p.default not in (None, False) and not getattr(p, "hidden", False)
    ]
    assert text.count("[default:") >= len(with_default), [p.name for p in with_default]


def test_version_is_printed() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"kcloud-observatory {__version__}"


def test_completion_script_is_printed_and_the_shell_is_answered() -> None:
    script = runner.invoke(app, ["completion", "bash"])
    assert script.exit_code == 0
    assert "_KCLOUD_COMPLETE=complete_bash" in script.output and "complete -o default -F" in script.output
    kcloud = Path(sys.executable).with_name("kcloud")
    answer = subprocess.run(
        [str(kcloud)],
        env={"_KCLOUD_COMPLETE": "complete_bash", "COMP_WORDS": "kcloud alerts --s", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert answer.stdout.split() == ["--since", "--severity"], answer.stderr
    unknown = runner.invoke(app, ["completion", "tcsh"])
    assert unknown.exit_code == 2 and "tcsh" in unknown.output


def test_alerts_refuses_contradicting_or_malformed_filters_without_a_database() -> None:
    both = runner.invoke(app, ["alerts", "--open", "--resolved"])
    assert both.exit_code == 2 and "--open and --resolved exclude each other" in both.output
    bad = runner.invoke(app, ["alerts", "--since", "yesterday"])
    assert bad.exit_code == 2 and "'yesterday' is not a duration" in bad.output


def test_status_says_quickly_what_is_down_and_exits_1(tmp_path: Path) -> None:
    env = {
        "KCLOUD_STATE_DIR": str(tmp_path),
        "KCLOUD_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "KCLOUD_PG_PORT": "2",
        "KCLOUD_GATEWAY_PORT": "3",
    }
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 1
    states = {ln.split()[1]: ln.split()[0] for ln in result.output.splitlines()}
    assert states == {"postgres": "FAIL", "kafka": "FAIL", "gateway": "--"}, result.output
    assert "nothing accepts connections on 127.0.0.1:1" in result.output
