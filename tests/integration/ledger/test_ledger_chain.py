"""The deployment ledger proves itself: `kcloud ledger verify` passes an intact chain, names the first row
that was changed or removed behind the append-only trigger, and signed checkpoints hold the service to a head."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from ledger_helpers import append, cli, events, key_file, seqs, tamper

from kcloud.db.migrate import migrate
from kcloud.ledger import head, verify_ledger
from kcloud.settings import Settings


@pytest.fixture
def ledger_db(test_settings: Settings) -> str:
    migrate(test_settings.effective_database_url, test_settings)
    return test_settings.effective_database_url


def test_an_intact_ledger_verifies_and_names_its_head(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(4))
    append(ledger_db, tmp_path, events(3, start=4))
    with psycopg.connect(ledger_db) as conn:
        h = head(conn)
        result = verify_ledger(conn)
    assert h.count == 7 and result.ok and result.rows == 7 and result.head_hash == h.hash
    code, out = cli(ledger_db, tmp_path, "ledger", "verify", "--no-kafka")
    assert code == 0, out
    assert f"ledger intact: 7 row(s), head seq {h.seq}, head hash {h.hash}" in out
    assert "2 signed append(s) checked under the trusted key" in out


def test_an_empty_ledger_verifies(ledger_db: str, tmp_path: Path) -> None:
    code, out = cli(ledger_db, tmp_path, "ledger", "verify", "--no-kafka")
    assert code == 0 and "empty" in out


def test_a_row_changed_behind_the_trigger_is_named(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(6))
    target = seqs(ledger_db)[3]
    tamper(ledger_db, f"UPDATE deployment_events SET details = details || '{{\"util_pct\": 99}}' WHERE seq = {target}")
    code, out = cli(ledger_db, tmp_path, "ledger", "verify", "--no-kafka")
    assert code == 1
    assert f"ledger BROKEN at seq {target}" in out and "column details" in out and "3 row(s) before it" in out


def test_a_removed_row_is_named_at_the_row_after_it(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(5))
    s = seqs(ledger_db)
    tamper(ledger_db, f"DELETE FROM deployment_events WHERE seq = {s[2]}")
    code, out = cli(ledger_db, tmp_path, "ledger", "verify", "--no-kafka")
    assert code == 1
    assert f"ledger BROKEN at seq {s[3]}" in out and "removed or reordered" in out


def test_a_signed_checkpoint_holds_until_the_rows_it_names_are_touched(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(5))
    out_file = tmp_path / "cp.json"
    code, out = cli(ledger_db, tmp_path, "ledger", "checkpoint", "--no-kafka", "--out", str(out_file))
    assert code == 0, out
    assert key_file(tmp_path).stat().st_mode & 0o777 == 0o600
    doc = json.loads(out_file.read_text())
    assert doc["row_count"] == 5
    stored = list((tmp_path / "state" / "checkpoints").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == doc
    assert stored[0].stat().st_mode & 0o222 == 0  # read-only

    append(ledger_db, tmp_path, events(2, start=5))  # growth after the checkpoint is fine
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(out_file))
    assert code == 0 and "checkpoint holds" in out, out
    code, out = cli(ledger_db, tmp_path, "ledger", "verify", "--no-kafka")
    assert code == 0 and "extends the newest known checkpoint" in out and "(5 row(s)" in out, out

    forged = dict(doc, row_count=4)
    forged_file = tmp_path / "forged.json"
    forged_file.write_text(json.dumps(forged))
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(forged_file))
    assert code == 1 and "signature does not match" in out

    first = seqs(ledger_db)[0]
    tamper(ledger_db, f"UPDATE deployment_events SET event = 'idle' WHERE seq = {first}")
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(out_file))
    assert code == 1 and f"BROKEN at seq {first}" in out


def test_a_missing_or_garbled_checkpoint_gets_a_clear_message(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(1))
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(tmp_path / "nope.json"))
    assert code == 1 and "cannot read" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(bad))
    assert code == 1 and "is not JSON (line 1" in out
