"""`kcloud alerts` on a real database: open alerts first, then the recent resolved ones, each filter
narrowing what is shown, and JSON lines for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from typer.testing import CliRunner

from console.main import app
from kcloud.db.migrate import migrate
from kcloud.settings import Settings
from streams.launcher import settings_env

NOW = datetime.now(UTC)
#: (rule, severity, node, started hours ago, resolved hours ago or None, summary)
ALERTS = [
    ("temp_high", "warning", "rack-a-01", 2.0, None, "GPU-a01-3 at 93 °C"),
    ("health_failed", "critical", "rack-a-02", 5.0, 1.0, "NPU-a02-0 reports health failed"),
    ("node_silent", "warning", "rack-b-07", 30.0, 28.0, "rack-b-07 silent for 5 min"),
    ("ecc_rising", "critical", "rack-b-07", 50.0, None, "GPU-b07-1 uncorrected ECC errors rising"),
]


def _seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        for i, (rule, severity, node, started, resolved, summary) in enumerate(ALERTS):
            conn.execute(
                "INSERT INTO alerts (fingerprint, rule, severity, node_id, summary, started_at, resolved_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    f"fp-{i}",
                    rule,
                    severity,
                    node,
                    summary,
                    NOW - timedelta(hours=started),
                    None if resolved is None else NOW - timedelta(hours=resolved),
                ),
            )


def _alerts(settings: Settings, *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["alerts", "--json", *args], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_alerts_show_open_ones_first_then_recent_ones_and_each_filter_narrows(test_settings: Settings) -> None:
    migrate(test_settings.migration_database_url, test_settings)
    _seed(test_settings.effective_database_url)

    default = _alerts(test_settings)  # the last 24 h, and every open alert however old
    assert [a["rule"] for a in default] == ["temp_high", "ecc_rising", "health_failed"]
    assert [a["resolved_at"] is None for a in default] == [True, True, False]

    assert [a["rule"] for a in _alerts(test_settings, "--since", "7d")][-1] == "node_silent"
    assert [a["rule"] for a in _alerts(test_settings, "--open")] == ["temp_high", "ecc_rising"]
    assert [a["rule"] for a in _alerts(test_settings, "--resolved", "--since", "2d")] == [
        "health_failed",
        "node_silent",
    ]
    assert [a["rule"] for a in _alerts(test_settings, "--severity", "critical")] == ["ecc_rising", "health_failed"]
    assert [a["rule"] for a in _alerts(test_settings, "--rule", "temp_high")] == ["temp_high"]
    assert [a["node_id"] for a in _alerts(test_settings, "--node", "rack-b", "--since", "7d")] == ["rack-b-07"] * 2
    assert len(_alerts(test_settings, "--limit", "1")) == 1

    table = CliRunner().invoke(app, ["alerts", "--open"], env=settings_env(test_settings))
    assert table.exit_code == 0
    header, *rows = table.output.splitlines()
    assert header.split()[:2] == ["state", "started"]
    assert rows[0].split()[0] == "open" and rows[0].endswith("GPU-a01-3 at 93 °C")

    none = CliRunner().invoke(app, ["alerts", "--rule", "no_such_rule"], env=settings_env(test_settings))
    assert none.exit_code == 0 and none.output.startswith("no alerts within 24h")
