"""`kcloud vendor ...` against the real database: vendors are registered, tokens issued for registered
vendors only, and every mistake is one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from gateway_helpers import KCLOUD, ROOT

from kcloud.db.connect import connect
from kcloud.settings import Settings
from streams.launcher import settings_env


def _kcloud(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KCLOUD), *args], cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, check=False
    )


def test_a_vendor_is_added_then_gets_a_token_that_only_its_hash_is_stored_of(gw_settings: Settings) -> None:
    added = _kcloud(gw_settings, "vendor", "add", "hyperaccel", "--domestic", "--display-name", "HyperAccel")
    assert added.returncode == 0, added.stderr
    assert "vendor hyperaccel added (domestic)" in added.stdout
    again = _kcloud(gw_settings, "vendor", "add", "hyperaccel", "--domestic")
    assert "nothing changed" in again.stdout

    created = _kcloud(gw_settings, "vendor", "token", "create", "--vendor", "hyperaccel", "--expires", "never")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("kc_")
    assert "never expires" in created.stderr
    secret = token.split("_", 2)[2]

    listed = _kcloud(gw_settings, "vendor", "list")
    assert "hyperaccel" in listed.stdout and "domestic" in listed.stdout and "HyperAccel" in listed.stdout
    with connect(gw_settings.effective_database_url) as conn:
        row = conn.execute("SELECT vendor_id, role, salt, hash FROM vendor_tokens").fetchone()
    assert row is not None and row[:2] == ("hyperaccel", "vendor")
    assert secret.encode() not in bytes(row[2]) + bytes(row[3])


def test_a_program_manager_token_belongs_to_no_vendor(gw_settings: Settings) -> None:
    created = _kcloud(gw_settings, "vendor", "token", "create", "--role", "program-manager", "--label", "pmo")
    assert created.returncode == 0, created.stderr
    token_id = created.stdout.strip().split("_")[1]
    listed = _kcloud(gw_settings, "vendor", "token", "list")
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(token_id)]
    assert line.split()[1:3] == ["-", "program-manager"], line
    with connect(gw_settings.effective_database_url) as conn:
        row = conn.execute("SELECT vendor_id FROM vendor_tokens WHERE token_id = %s", (token_id,)).fetchone()
        assert row == (None,)
        # the schema holds the rule too: a vendor token needs a vendor, a program-manager token has none
        for vendor, role in (("furiosa", "program-manager"), (None, "vendor")):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "INSERT INTO vendor_tokens (token_id, vendor_id, role, salt, hash) VALUES ('x', %s, %s, '', '')",
                    (vendor, role),
                )
            conn.rollback()


def test_expiry_defaults_to_a_year_and_is_listed(gw_settings: Settings) -> None:
    default = _kcloud(gw_settings, "vendor", "token", "create", "--vendor", "furiosa")
    dated = _kcloud(gw_settings, "vendor", "token", "create", "--vendor", "furiosa", "--expires", "2099-06-30")
    short = _kcloud(gw_settings, "vendor", "token", "create", "--vendor", "furiosa", "--expires", "1s")
    assert default.returncode == dated.returncode == short.returncode == 0, (default.stderr, dated.stderr)
    a_year = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%d")
    assert f"expires {a_year}" in default.stderr, default.stderr
    time.sleep(1.5)
    listed = _kcloud(gw_settings, "vendor", "token", "list", "--vendor", "furiosa").stdout
    lines = {line.split()[0]: line for line in listed.splitlines()[1:]}
    assert a_year in lines[default.stdout.strip().split("_")[1]]
    assert "2099-06-30 00:00:00Z" in lines[dated.stdout.strip().split("_")[1]]
    assert "(expired)" in lines[short.stdout.strip().split("_")[1]]
    live = _kcloud(gw_settings, "vendor", "token", "list", "--live").stdout
    assert short.stdout.strip().split("_")[1] not in live and dated.stdout.strip().split("_")[1] in live


def test_mistakes_are_one_clear_line_and_exit_1(gw_settings: Settings) -> None:
    cases = {
        ("vendor", "token", "create", "--vendor", "nosuchvendor"): "vendor 'nosuchvendor' is not registered",
        ("vendor", "token", "create", "--vendor", "furiosa", "--role", "admin"): "role 'admin' is not one of",
        ("vendor", "token", "create"): "a vendor token pushes for one vendor: name it with --vendor NAME",
        ("vendor", "token", "create", "--role", "program-manager", "--vendor", "furiosa"): "leave out --vendor",
        ("vendor", "token", "create", "--vendor", "furiosa", "--expires", "soon"): "is not a duration",
        ("vendor", "token", "create", "--vendor", "furiosa", "--expires", "2001-01-01"): "is not in the future",
        ("vendor", "token", "revoke", "0123456789ab"): "no token with id '0123456789ab'",
        ("vendor", "add", "Bad Name", "--foreign"): "is not a valid slug",
    }
    for args, says in cases.items():
        result = _kcloud(gw_settings, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
