"""`kcloud demo` (the README's run command) brings the whole service up, supervises it, and accounts for
every snapshot the collector delivered when it stops."""

from __future__ import annotations

import subprocess
import sys

from infra.kafka import KafkaService
from kcloud.settings import Settings
from streams.launcher import settings_env


def test_a_bounded_demo_stores_everything_delivered_and_stops_cleanly(
    test_settings: Settings, kafka_up: KafkaService
) -> None:
    settings = test_settings.model_copy(update={"app_id": f"demo-{test_settings.topic_namespace}"})
    done = subprocess.run(
        [sys.executable, "-m", "kcloud.cli", "demo", "--nodes", "6", "--interval", "1", "--duration", "12"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "running: 6 simulated nodes every 1s for 12s" in out
    summary = next(line for line in out.splitlines() if line.startswith("collector delivered"))
    delivered = int(summary.split()[2])
    stored = int(summary.split("; ")[1].split()[0])
    assert delivered >= 6 * 8 and stored == delivered
    assert "1 malformed message(s) dead-lettered" in out
    # every card commissioned once (the simulator may also take a node offline or fail a card: more events)
    ledger = next(line for line in out.splitlines() if line.startswith("ledger: "))
    assert int(ledger.split()[1]) >= 40 and "intact, every append signed by the trusted key" in ledger, ledger
    ps = subprocess.run(["pgrep", "-f", f"KCLOUD_APP_ID=demo-{test_settings.topic_namespace}"], check=False)
    assert ps.returncode == 1  # no child left behind
