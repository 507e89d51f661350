"""The deployment ledger written by a real pipeline run holds: UPDATE and DELETE are refused, `kcloud ledger
verify` passes the intact chain, and names the row once one is changed behind the append-only trigger.
(The chain's own rules are tested in tests/integration/ledger; here the rows come from stream workers.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import fleet_input, scalar, send, wait_until
from reliability_helpers import ROOT, record_figures, start_worker

from kcloud.settings import Settings
from streams.launcher import settings_env

pytestmark = pytest.mark.reliability


def _verify(settings: Settings) -> tuple[int, str]:
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kcloud"), "ledger", "verify"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_a_pipeline_ledger_refuses_changes_and_names_a_row_altered_behind_the_trigger(
    rel_settings: Settings, tmp_path: Path
) -> None:
    url = rel_settings.effective_database_url
    snaps = fleet_input(nodes=4, ticks=12)
    worker = start_worker(rel_settings, tmp_path, "ledger")
    try:
        send(rel_settings, snaps)
        wait_until(lambda: scalar(url, "SELECT count(*) FROM deployment_events") >= 4 * 8, 60, "commissioned events")
        wait_until(lambda: worker.counters()["messages"] >= len(snaps), 60, "every message consumed")
    finally:
        worker.stop()
    rows = scalar(url, "SELECT count(*) FROM deployment_events")
    code, intact = _verify(rel_settings)
    assert code == 0 and f"ledger intact: {rows} row(s)" in intact, intact

    refused: dict[str, str] = {}
    for verb, sql in {
        "UPDATE": "UPDATE deployment_events SET event = 'idle' WHERE seq = (SELECT min(seq) FROM deployment_events)",
        "DELETE": "DELETE FROM deployment_events WHERE seq = (SELECT max(seq) FROM deployment_events)",
        "TRUNCATE": "TRUNCATE deployment_events",
    }.items():
        with psycopg.connect(url) as conn, pytest.raises(psycopg.Error) as exc:
            conn.execute(sql)
        refused[verb] = str(exc.value).splitlines()[0]
    assert scalar(url, "SELECT count(*) FROM deployment_events") == rows

    with psycopg.connect(url) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM deployment_events ORDER BY seq").fetchall()]
    target = seqs[len(seqs) // 2]
    with psycopg.connect(url) as conn, conn.transaction():  # what only a superuser can do: triggers off
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("UPDATE deployment_events SET node_id = node_id || '-moved' WHERE seq = %s", (target,))
    code, broken = _verify(rel_settings)
    record_figures(
        "ledger",
        {"ledger_rows": rows, "refused": refused, "verify_intact": intact.strip(), "verify_after": broken.strip()},
    )
    assert code == 1, broken
    assert f"ledger BROKEN at seq {target}" in broken and "was changed" in broken, broken
    assert "Traceback" not in broken
