"""`kcloud vendor ...` against the real database: vendors are registered, tokens issued for registered
vendors only, and every mistake is one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import subprocess

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

    created = _kcloud(gw_settings, "vendor", "token", "create", "hyperaccel", "--role", "program-manager")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("kc_")
    secret = token.split("_", 2)[2]

    listed = _kcloud(gw_settings, "vendor", "list")
    assert "hyperaccel" in listed.stdout and "domestic" in listed.stdout and "HyperAccel" in listed.stdout
    with connect(gw_settings.effective_database_url) as conn:
        row = conn.execute("SELECT vendor_id, role, salt, hash FROM vendor_tokens").fetchone()
    assert row is not None and row[:2] == ("hyperaccel", "program-manager")
    assert secret.encode() not in bytes(row[2]) + bytes(row[3])


def test_mistakes_are_one_clear_line_and_exit_1(gw_settings: Settings) -> None:
    cases = {
        ("vendor", "token", "create", "nosuchvendor"): "vendor 'nosuchvendor' is not registered",
        ("vendor", "token", "create", "furiosa", "--role", "admin"): "role 'admin' is not one of",
        ("vendor", "token", "revoke", "0123456789ab"): "no token with id '0123456789ab'",
        ("vendor", "add", "Bad Name", "--foreign"): "is not a valid slug",
    }
    for args, says in cases.items():
        result = _kcloud(gw_settings, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
