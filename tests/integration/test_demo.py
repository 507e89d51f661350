"""`kcloud demo` (the README's run command) brings the whole service up, supervises it, and accounts for
every snapshot the collector delivered when it stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.kafka import KafkaService
from kcloud.settings import Settings
from streams.launcher import settings_env


def test_a_bounded_demo_stores_everything_delivered_and_stops_cleanly(
    test_settings: Settings, kafka_up: KafkaService
) -> None:
    settings = test_settings.model_copy(update={"app_id": f"demo-{test_settings.topic_namespace}"})
    done = subprocess.run(
        [sys.executable, "-m", "console.main", "demo", "--nodes", "6", "--interval", "1", "--duration", "12"],
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


def test_a_worker_killed_during_the_demo_is_restarted_said_so_and_counted_across(
    test_settings: Settings, kafka_up: KafkaService
) -> None:
    settings = test_settings.model_copy(
        update={"app_id": f"demo-{test_settings.topic_namespace}", "worker_session_timeout_s": 6.0}
    )
    with subprocess.Popen(
        [sys.executable, "-m", "console.main", "demo", "--nodes", "4", "--interval", "1", "--duration", "45"],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        lines: list[str] = []
        killed = False
        deadline = time.monotonic() + 240
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))
            found = re.match(r"stream worker: http://127\.0\.0\.1:(\d+)/counters/ \(JSON\) and .*/metrics", line)
            if found and not killed:
                time.sleep(10)  # the malformed message is dead-lettered by this first worker
                pattern = f"streams worker --web-port {found.group(1)}"
                found_pids = subprocess.run(["pgrep", "-f", pattern], check=False, capture_output=True, text=True)
                mine = f"KCLOUD_APP_ID={settings.app_id}".encode()
                pids = [p for p in found_pids.stdout.split() if mine in Path(f"/proc/{p}/environ").read_bytes()]
                assert len(pids) == 1, pids
                os.kill(int(pids[0]), signal.SIGKILL)
                killed = True
            assert time.monotonic() < deadline, "\n".join(lines)
        assert demo.wait(timeout=60) == 0, "\n".join(lines)
    out = "\n".join(lines)
    assert killed, out
    assert any(re.fullmatch(r"collector: http://127\.0\.0\.1:\d+/metrics \(Prometheus\).*", ln) for ln in lines)
    assert any(ln.startswith("stream worker exited with -9; restarted (1/3)") for ln in lines), out
    assert any(re.fullmatch(r"stream worker caught up \d+s after its restart \(lag [0-4]\)", ln) for ln in lines), out
    summary = next(line for line in lines if line.startswith("collector delivered"))
    assert int(summary.split()[2]) == int(summary.split("; ")[1].split()[0]), summary
    assert "1 malformed message(s) dead-lettered" in out
