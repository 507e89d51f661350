"""The deployment ledger proves itself: `kcloud ledger verify` passes an intact chain, names the first row
that was changed or removed behind the append-only trigger, and signed checkpoints hold the service to a head."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from kcloud.cli import app
from kcloud.db.migrate import migrate
from kcloud.ledger import append_events, head, verify_ledger
from kcloud.records import DeploymentEvent
from kcloud.settings import Settings

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger_db(test_settings: Settings) -> str:
    migrate(test_settings.effective_database_url, test_settings)
    return test_settings.effective_database_url


def _events(n: int, start: int = 0) -> list[DeploymentEvent]:
    kinds = ["commissioned", "active", "idle", "offline", "returned"]
    return [
        DeploymentEvent(
            device_uuid=f"rngd-{i % 3:04d}",
            vendor="furiosa",
            event=kinds[i % len(kinds)],  # type: ignore[arg-type]
            at=T0 + timedelta(minutes=i),
            node_id="pangyo-n01",
            site_id="kt-pangyo",
            details={"i": i, "util_pct": 41.5, "note": "연구용 추론"},
        )
        for i in range(start, start + n)
    ]


def _append(url: str, events: list[DeploymentEvent]) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        append_events(conn, events, {})


def _cli(url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"KCLOUD_DATABASE_URL": url, "KCLOUD_STATE_DIR": str(tmp_path / "state")}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _tamper(url: str, sql: str) -> None:
    """Change the ledger the way only a superuser can: with the append-only triggers and FKs switched off."""
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql)


def test_an_intact_ledger_verifies_and_names_its_head(ledger_db: str, tmp_path: Path) -> None:
    _append(ledger_db, _events(4))
    _append(ledger_db, _events(3, start=4))
    with psycopg.connect(ledger_db) as conn:
        h = head(conn)
        result = verify_ledger(conn)
    assert h.count == 7 and result.ok and result.rows == 7 and result.head_hash == h.hash
    code, out = _cli(ledger_db, tmp_path, "ledger", "verify")
    assert code == 0, out
    assert f"ledger intact: 7 row(s), head seq {h.seq}, head hash {h.hash}" in out


def test_an_empty_ledger_verifies(ledger_db: str, tmp_path: Path) -> None:
    code, out = _cli(ledger_db, tmp_path, "ledger", "verify")
    assert code == 0 and "empty" in out


def test_a_row_changed_behind_the_trigger_is_named(ledger_db: str, tmp_path: Path) -> None:
    _append(ledger_db, _events(6))
    with psycopg.connect(ledger_db) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM deployment_events ORDER BY seq").fetchall()]
    target = seqs[3]
    _tamper(ledger_db, f"UPDATE deployment_events SET details = details || '{{\"util_pct\": 99}}' WHERE seq = {target}")
    code, out = _cli(ledger_db, tmp_path, "ledger", "verify")
    assert code == 1
    assert f"ledger BROKEN at seq {target}" in out and "was changed" in out and "3 row(s) before it" in out


def test_a_removed_row_is_named_at_the_row_after_it(ledger_db: str, tmp_path: Path) -> None:
    _append(ledger_db, _events(5))
    with psycopg.connect(ledger_db) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM deployment_events ORDER BY seq").fetchall()]
    _tamper(ledger_db, f"DELETE FROM deployment_events WHERE seq = {seqs[2]}")
    code, out = _cli(ledger_db, tmp_path, "ledger", "verify")
    assert code == 1
    assert f"ledger BROKEN at seq {seqs[3]}" in out and "removed or reordered" in out


def test_a_signed_checkpoint_holds_until_the_rows_it_names_are_touched(ledger_db: str, tmp_path: Path) -> None:
    _append(ledger_db, _events(5))
    out_file = tmp_path / "cp.json"
    code, out = _cli(ledger_db, tmp_path, "ledger", "checkpoint", "--out", str(out_file))
    assert code == 0, out
    assert "created signing key" in out
    key_file = tmp_path / "state" / "keys" / "ledger-ed25519.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    doc = json.loads(out_file.read_text())
    assert doc["row_count"] == 5

    _append(ledger_db, _events(2, start=5))  # growth after the checkpoint is fine
    code, out = _cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(out_file))
    assert code == 0 and "checkpoint holds" in out, out

    forged = dict(doc, row_count=4)
    forged_file = tmp_path / "forged.json"
    forged_file.write_text(json.dumps(forged))
    code, out = _cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(forged_file))
    assert code == 1 and "signature does not match" in out

    with psycopg.connect(ledger_db) as conn:
        first = conn.execute("SELECT min(seq) FROM deployment_events").fetchone()
    assert first is not None
    _tamper(ledger_db, f"UPDATE deployment_events SET event = 'idle' WHERE seq = {first[0]}")
    code, out = _cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(out_file))
    assert code == 1 and f"broken at seq {first[0]}" in out


def test_a_missing_or_garbled_checkpoint_gets_a_clear_message(ledger_db: str, tmp_path: Path) -> None:
    code, out = _cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(tmp_path / "nope.json"))
    assert code == 1 and "cannot read" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, out = _cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(bad))
    assert code == 1 and "is not JSON (line 1" in out
