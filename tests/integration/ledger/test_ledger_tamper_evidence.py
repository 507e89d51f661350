"""Tamper evidence against someone with database access but not the ledger key: every column a figure reads
is hashed, a correctly chained row added without the key is named, rows removed from the end show against
the newest checkpoint, a checkpoint is accepted only under the trusted key, and rows of form 1 (written
before migration 0008) still verify."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import T0, append, cli, events, key_file, seqs, tamper

from kcloud.db.migrate import migrate
from kcloud.ledger.chain import LedgerRow, content_hash, row_content, row_hash
from kcloud.ledger.checkpoint import sign_checkpoint
from kcloud.ledger.keys import public_key_text
from kcloud.settings import Settings


@pytest.fixture
def ledger_db(test_settings: Settings) -> str:
    migrate(test_settings.effective_database_url, test_settings)
    return test_settings.effective_database_url


def _verify(url: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    return cli(url, tmp_path, "ledger", "verify", "--no-kafka", *extra)


def _devices(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("INSERT INTO sites (site_id) VALUES ('kt-pangyo')")
        conn.execute("INSERT INTO nodes VALUES ('pangyo-n01', 'kt-pangyo', 'n01', %s, %s)", (T0, T0))
        rows = conn.execute(
            "INSERT INTO devices (device_uuid, vendor_id, kind, node_id, first_seen, last_seen)"
            " SELECT 'rngd-000' || i, 'furiosa', 'npu', 'pangyo-n01', %s, %s FROM generate_series(0, 2) i"
            " RETURNING device_uuid, device_id",
            (T0, T0),
        ).fetchall()
    return {str(u): int(i) for u, i in rows}


def test_device_id_is_hashed_so_swapping_it_is_named(ledger_db: str, tmp_path: Path) -> None:
    ids = _devices(ledger_db)
    append(ledger_db, tmp_path, events(4), ids)
    target = seqs(ledger_db)[1]
    tamper(ledger_db, "UPDATE deployment_events SET device_id = %s WHERE seq = %s", (ids["rngd-0002"], target))
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {target}: column device_id" in out, out


def test_a_correctly_chained_row_inserted_without_the_key_is_named(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(3))
    with psycopg.connect(ledger_db) as conn:
        row = conn.execute("SELECT hash FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
        assert row is not None
        forged = LedgerRow("rngd-0001", "offline", T0, "pangyo-n01", "kt-pangyo", {}, None)
        content = row_content(forged)
        conn.execute(
            "INSERT INTO deployment_events (device_uuid, event, at, node_id, site_id, details, prev_hash, hash,"
            " content) VALUES ('rngd-0001', 'offline', %s, 'pangyo-n01', 'kt-pangyo', '{}', %s, %s, %s)",
            (T0, row[0], content_hash(row[0], content), content),
        )
    inserted = seqs(ledger_db)[-1]
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {inserted}: no append signed by the trusted key covers" in out, out

    append(ledger_db, tmp_path, events(2, start=3))  # the service's next append does not cover it either
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {inserted}: no append signed" in out, out


def test_an_append_signed_by_another_key_is_named(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(2))
    other = tmp_path / "other"
    append(ledger_db, other, events(2, start=2))  # another key under another state dir
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {seqs(ledger_db)[-1]}: its append's signature does not hold" in out, out


def test_rows_removed_from_the_end_fail_against_the_newest_checkpoint(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(3))
    append(ledger_db, tmp_path, events(3, start=3))
    code, out = cli(ledger_db, tmp_path, "ledger", "checkpoint", "--no-kafka")
    assert code == 0, out
    tamper(ledger_db, "DELETE FROM deployment_events WHERE seq > %s", (seqs(ledger_db)[2],))
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and "ledger BROKEN past its end: the ledger has 3 row(s)" in out, out
    assert "3 row(s) were removed from its end" in out


def test_a_checkpoint_signed_with_another_key_is_refused(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(3))
    attacker = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(attacker, 2, None, "0" * 64)
    path = tmp_path / "attacker.json"
    path.write_text(forged.to_json())  # the attacker's own public key is in the file
    code, out = cli(ledger_db, tmp_path, "ledger", "check-checkpoint", str(path))
    assert code == 1 and "signed by another key" in out and "refused" in out, out
    code, out = _verify(ledger_db, tmp_path, "--checkpoint", str(path))
    assert code == 1 and "checkpoint REFUSED" in out and "signed by another key" in out, out
    store = tmp_path / "state" / "checkpoints"
    store.mkdir(parents=True)
    (store / "cp-forged.json").write_text(forged.to_json())
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and "checkpoint REFUSED" in out, out


def test_a_signing_key_others_may_read_is_refused_with_how_to_fix_it(ledger_db: str, tmp_path: Path) -> None:
    append(ledger_db, tmp_path, events(1))
    os.chmod(key_file(tmp_path), 0o644)
    code, out = cli(ledger_db, tmp_path, "ledger", "checkpoint", "--no-kafka")
    assert code == 1 and "may be read by others (mode 0644)" in out and f"chmod 600 {key_file(tmp_path)}" in out
    with pytest.raises(Exception, match="chmod 600"):
        append(ledger_db, tmp_path, events(1, start=1))
    os.chmod(key_file(tmp_path), 0o600)
    code, out = cli(ledger_db, tmp_path, "ledger", "checkpoint", "--no-kafka")
    assert code == 0, out


def test_form1_rows_from_before_the_upgrade_verify_are_signed_by_the_next_append_and_cannot_follow_form2(
    ledger_db: str, tmp_path: Path
) -> None:
    prev: str | None = None
    with psycopg.connect(ledger_db) as conn, conn.transaction():  # as the code before migration 0008 wrote
        for ev in events(3, details={"util_pct": 41.5}):
            row = LedgerRow(ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, ev.details)
            h = row_hash(prev, row)
            conn.execute(
                "INSERT INTO deployment_events (device_id, device_uuid, event, at, node_id, site_id, details,"
                " prev_hash, hash) VALUES (NULL, %s, %s, %s, %s, %s, %s, %s, %s)",
                (ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, json.dumps(ev.details), prev, h),
            )
            prev = h
    code, out = _verify(ledger_db, tmp_path, "--public-key", public_key_text(Ed25519PrivateKey.generate()))
    assert code == 0 and "ledger intact: 3 row(s)" in out and "not signed yet: the next append signs them" in out
    append(ledger_db, tmp_path, events(2, start=3))
    code, out = _verify(ledger_db, tmp_path)
    assert code == 0 and "ledger intact: 5 row(s)" in out and "3 row(s) of form 1" in out, out
    with psycopg.connect(ledger_db) as conn:
        assert conn.execute("SELECT signed_rows FROM deployment_events WHERE signature IS NOT NULL").fetchall() == [
            (5,)
        ]

    last = seqs(ledger_db)[-1]
    with psycopg.connect(ledger_db) as conn:  # a form-1 row chained after the form-2 rows
        row = conn.execute("SELECT hash FROM deployment_events WHERE seq = %s", (last,)).fetchone()
        assert row is not None
        ev = events(1, start=9, details={})[0]
        h = row_hash(row[0], LedgerRow(ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, {}))
        conn.execute(
            "INSERT INTO deployment_events (device_uuid, event, at, node_id, site_id, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (ev.device_uuid, ev.event, ev.at, ev.node_id, ev.site_id, row[0], h),
        )
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {last + 1}: a row of form 1" in out, out
    tamper(ledger_db, "DELETE FROM deployment_events WHERE seq = %s", (last + 1,))

    # the form-1 history rewritten consistently (every form-1 hash recomputed) breaks the first signed append
    first = seqs(ledger_db)[0]
    tamper(ledger_db, "UPDATE deployment_events SET details = '{\"util_pct\": 0}' WHERE seq = %s", (first,))
    rehash_prev: str | None = None
    with psycopg.connect(ledger_db) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for seq, uuid, event, at, node, site, details, content in conn.execute(
            "SELECT seq, device_uuid, event, at, node_id, site_id, details, content FROM deployment_events ORDER BY seq"
        ).fetchall():
            if content is not None:
                conn.execute("UPDATE deployment_events SET prev_hash = %s WHERE seq = %s", (rehash_prev, seq))
                break
            h = row_hash(rehash_prev, LedgerRow(uuid, event, at, node, site, details))
            conn.execute("UPDATE deployment_events SET prev_hash = %s, hash = %s WHERE seq = %s", (rehash_prev, h, seq))
            rehash_prev = h
    code, out = _verify(ledger_db, tmp_path)
    assert code == 1 and f"BROKEN at seq {first + 3}: content does not match its hash" in out, out


def test_checkpoints_are_published_to_and_read_back_from_kafka(
    test_settings: Settings, kafka_up: object, tmp_path: Path
) -> None:
    from infra.kafka import KafkaService

    url = test_settings.effective_database_url
    migrate(url, test_settings)
    KafkaService(test_settings).ensure_topics()
    env = {
        "KCLOUD_KAFKA_BOOTSTRAP": test_settings.kafka_bootstrap,
        "KCLOUD_TOPIC_NAMESPACE": test_settings.topic_namespace,
    }
    append(url, tmp_path, events(2))
    append(url, tmp_path, events(2, start=2))
    code, out = cli(url, tmp_path, "ledger", "checkpoint", **env)
    assert code == 0 and "published on" in out, out
    for path in (tmp_path / "state" / "checkpoints").glob("*.json"):  # only the Kafka copy is left
        os.chmod(path, 0o644)
        path.unlink()
    tamper(url, "DELETE FROM deployment_events WHERE seq > %s", (seqs(url)[1],))  # the newest append
    code, out = cli(url, tmp_path, "ledger", "verify", **env)
    assert code == 1 and "the ledger has 2 row(s)" in out and "2 row(s) were removed from its end" in out, out
