"""The ledger as evidence against a hostile vendor and a hostile database user, with real processes.

A stream worker stores snapshots whose util_pct values do not survive jsonb unchanged (-0.0, 5e-324,
17-digit floats ...) across an idle transition, and `kcloud ledger verify` says intact. Then, acting as a
superuser of the database (but without the ledger key): a device_id swapped behind the triggers, a
correctly chained row added with a plain INSERT, a checkpoint signed with the attacker's own key, the
newest rows removed after a checkpoint (only the Kafka copy of the checkpoint left), and a signing key
made readable by others; each is named by `kcloud ledger verify` or refused, and undone before the next."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import T0, scalar, send, wait_until
from reliability_helpers import ROOT, free_port, record_figures, start_worker

from collectors.simulator import SimulatedFleet
from kcloud.ledger.chain import LedgerRow, content_hash, row_content
from kcloud.ledger.checkpoint import sign_checkpoint
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from streams.launcher import settings_env

pytestmark = pytest.mark.reliability

#: util_pct values a client may send (0 <= util <= 100) whose jsonb form differs from their JSON text
ODD = [-0.0, 5e-324, 1e-300, 0.30000000000000004, 4.999999999999999, 1e-7, 2.2250738585072014e-308, 3.0000000000000004]
NODES, TICKS, QUIET_FROM = 2, 12, 4  # busy for 4 ticks, then quiet: active at 30 s, idle 30 s after going quiet


def _snapshots() -> list[NodeSnapshot]:
    fleet = SimulatedFleet(nodes=NODES, seed=7, node_prefix="odd")
    out: list[NodeSnapshot] = []
    for t in range(TICKS):
        for n in range(NODES):
            snap = fleet.snapshot(n, T0 + timedelta(seconds=10 * t), seq=t)
            devices = [
                d.model_copy(update={"util_pct": 50.0 if t < QUIET_FROM else ODD[i % len(ODD)]})
                for i, d in enumerate(snap.devices)
            ]
            out.append(snap.model_copy(update={"devices": devices}))
    return out


def _kcloud(settings: Settings, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kcloud"), *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _superuser(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """What only a superuser can do: the append-only triggers and foreign keys switched off."""
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql, params)


def test_odd_numbers_through_the_pipeline_verify_and_each_database_tampering_is_named(
    rel_settings: Settings, tmp_path: Path
) -> None:
    settings = rel_settings.model_copy(
        update={"ledger_key_file": tmp_path / "keys" / "ledger.pem", "ledger_checkpoint_dir": tmp_path / "cps"}
    )
    url = settings.effective_database_url
    snaps = _snapshots()
    devices = NODES * len(snaps[0].devices)
    worker = start_worker(settings, tmp_path, "ledger-odd")
    try:
        send(settings, snaps)
        wait_until(lambda: worker.counters()["messages"] >= len(snaps), 90, "every message consumed")
        wait_until(
            lambda: scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'idle'") >= devices, 60, "idle"
        )
    finally:
        worker.stop()
    figures: dict[str, object] = {}
    rows = scalar(url, "SELECT count(*) FROM deployment_events")
    idle = scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'idle'")
    neg_zero = scalar(
        url, "SELECT count(*) FROM deployment_events WHERE strpos(content, %s) > 0", ('"util_pct":-0.0}',)
    )
    code, out = _kcloud(settings, "ledger", "verify")
    figures["pipeline"] = {"rows": rows, "idle": idle, "idle_with_-0.0_stored": neg_zero, "verify": out}
    assert idle == devices and neg_zero == NODES, figures
    assert code == 0 and f"ledger intact: {rows} row(s)" in out, out

    with psycopg.connect(url) as conn:
        seq, device_id = conn.execute(
            "SELECT seq, device_id FROM deployment_events WHERE event = 'idle' ORDER BY seq LIMIT 1"
        ).fetchone() or (0, 0)
        other = conn.execute("SELECT max(device_id) FROM devices WHERE device_id <> %s", (device_id,)).fetchone()
    assert other is not None
    # 1. downtime moved to another card: device_id swapped behind the triggers
    _superuser(url, "UPDATE deployment_events SET device_id = %s WHERE seq = %s", (other[0], seq))
    code, out = _kcloud(settings, "ledger", "verify")
    figures["device_id_swapped"] = out
    assert code == 1 and f"BROKEN at seq {seq}: column device_id" in out, out
    _superuser(url, "UPDATE deployment_events SET device_id = %s WHERE seq = %s", (device_id, seq))
    assert _kcloud(settings, "ledger", "verify")[0] == 0

    # 2. a correctly chained row added with a plain INSERT (no trigger needs switching off for that)
    with psycopg.connect(url) as conn:
        last = conn.execute("SELECT hash FROM deployment_events ORDER BY seq DESC LIMIT 1").fetchone()
        assert last is not None
        forged = LedgerRow(
            snaps[0].devices[0].device_uuid, "offline", T0, snaps[0].node.node_id, snaps[0].node.site_id, {}
        )
        content = row_content(forged)
        inserted = conn.execute(
            "INSERT INTO deployment_events (device_uuid, event, at, node_id, site_id, prev_hash, hash, content)"
            " VALUES (%s, 'offline', %s, %s, %s, %s, %s, %s) RETURNING seq",
            (forged.device_uuid, T0, forged.node_id, forged.site_id, last[0], content_hash(last[0], content), content),
        ).fetchone()
    assert inserted is not None
    code, out = _kcloud(settings, "ledger", "verify")
    figures["unsigned_insert"] = out
    assert code == 1 and f"BROKEN at seq {inserted[0]}: no append signed by the trusted key covers" in out, out
    _superuser(url, "DELETE FROM deployment_events WHERE seq = %s", (inserted[0],))
    assert _kcloud(settings, "ledger", "verify")[0] == 0

    # 3. a checkpoint signed with the attacker's own key (which the file names)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    attacker = tmp_path / "attacker.json"
    attacker.write_text(sign_checkpoint(Ed25519PrivateKey.generate(), 3, None, "0" * 64).to_json())
    check_code, check_out = _kcloud(settings, "ledger", "check-checkpoint", str(attacker))
    verify_code, verify_out = _kcloud(settings, "ledger", "verify", "--checkpoint", str(attacker))
    figures["attacker_checkpoint"] = {"check-checkpoint": check_out, "verify": verify_out}
    assert check_code == 1 and "signed by another key" in check_out, check_out
    assert verify_code == 1 and "checkpoint REFUSED" in verify_out, verify_out

    # 4. the newest rows removed after a checkpoint; only the checkpoint topic's copy of it is left
    uuid = snaps[0].devices[2].device_uuid
    code, out = _kcloud(settings, "device", "decommission", uuid, "--reason", "RMA")  # a second writer's append
    assert code == 0, out
    code, out = _kcloud(settings, "ledger", "checkpoint")
    assert code == 0 and "published on" in out, out
    for path in (tmp_path / "cps").glob("*.json"):
        path.unlink()
    _superuser(url, "DELETE FROM deployment_events WHERE event = 'decommissioned'")
    code, out = _kcloud(settings, "ledger", "verify")
    figures["newest_rows_removed"] = out
    assert code == 1 and f"ledger has {rows} row(s)" in out and "1 row(s) were removed from its end" in out, out

    # 5. a signing key others may read: the writer refuses it, and says how to fix it
    key = tmp_path / "keys" / "ledger.pem"
    os.chmod(key, 0o644)
    before = scalar(url, "SELECT count(*) FROM deployment_events")
    code, out = _kcloud(settings, "device", "decommission", snaps[0].devices[3].device_uuid, "--reason", "RMA")
    figures["key_readable_by_others"] = out
    assert code == 1 and "may be read by others (mode 0644)" in out and f"chmod 600 {key}" in out, out
    assert "Traceback" not in out and scalar(url, "SELECT count(*) FROM deployment_events") == before
    code, out = _kcloud(settings, "streams", "worker", "--web-port", str(free_port()))
    figures["worker_with_key_readable_by_others"] = {"exit": code, "output": out[-400:]}
    assert code == 1 and f"chmod 600 {key}" in out and "Traceback" not in out, out
    record_figures("ledger_evidence", figures)
