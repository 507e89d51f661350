"""The agent against a real broker that goes away: snapshots spool on disk while Kafka is stopped, and
once it is back every snapshot arrives exactly once and in `seq` order per node.

The broker here is a dedicated one (ports 19192/19193, state under .kcloud/test-spool), because the
test stops it; the shared test broker on 19092 is never touched.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from infra.kafka import KafkaService
from kcloud.records import parse_snapshot
from kcloud.settings import Settings, load_settings
from kcloud.topics import TELEMETRY

ROOT = Path(__file__).resolve().parents[3]
NODES = 3


@pytest.fixture
def outage_broker() -> Iterator[KafkaService]:
    """A broker of this test's own, which the test may stop and start."""
    settings = load_settings(
        overrides={
            "state_dir": ROOT / ".kcloud" / "test-spool",
            "kafka_bootstrap": "127.0.0.1:19192",
            "kafka_controller_port": 19193,
            "kafka_partitions": 3,
            "topic_namespace": f"t{uuid.uuid4().hex[:8]}.",
        }
    )
    svc = KafkaService(settings)
    svc.up()
    try:
        yield svc
    finally:
        svc.down()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return -1.0
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; agent log:\n{log.read_text()[-3000:]}")


def _consume(settings: Settings, expected: int) -> list[tuple[str, int]]:
    consumer = KafkaConsumer(
        settings.topic(TELEMETRY),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for message in consumer:
                snap = parse_snapshot(message.value)
                got.append((snap.node.node_id, snap.seq))
                if len(got) >= expected:
                    break
    finally:
        consumer.close()
    return got


def test_snapshots_spooled_during_a_broker_outage_arrive_once_and_in_seq_order(
    outage_broker: KafkaService, tmp_path: Path
) -> None:
    settings = outage_broker.settings
    spool_dir = tmp_path / "spool"
    port = _free_port()
    log = tmp_path / "agent.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KCLOUD_")},
        "KCLOUD_STATE_DIR": str(settings.state_dir),
        "KCLOUD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KCLOUD_TOPIC_NAMESPACE": settings.topic_namespace,
    }
    cmd = [sys.executable, "-m", "collectors.cli", "sim", "--nodes", str(NODES), "--seed", "5"]
    cmd += ["--interval", "0.25", "--spool-dir", str(spool_dir), "--kafka-timeout", "3"]
    cmd += ["--metrics-port", str(port)]
    with log.open("wb") as out:
        agent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait("first deliveries", lambda: _metric(port, "kcloud_collector_delivered_total") >= 5 * NODES, 30, log)

        outage_broker.down()
        _wait(
            "snapshots to spool while the broker is down",
            lambda: _metric(port, "kcloud_collector_spool_depth_records") >= 8 * NODES,
            30,
            log,
        )
        spooled_during_outage = _metric(port, "kcloud_collector_spool_depth_records")

        outage_broker.up()
        _wait("the spool to drain", lambda: _metric(port, "kcloud_collector_spool_depth_records") == 0, 45, log)
        time.sleep(1.0)  # a few more direct ticks after the replay
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert spooled_during_outage >= 8 * NODES

    ticks = int((spool_dir / "seq").read_text())  # the next seq = how many ticks were produced
    got = _consume(settings, ticks * NODES)

    by_node: dict[str, list[int]] = defaultdict(list)
    for node_id, seq in got:
        by_node[node_id].append(seq)
    assert len(by_node) == NODES
    for node_id, seqs in by_node.items():
        assert seqs == list(range(ticks)), f"{node_id}: seqs not exactly once and in order: {seqs}"
    assert "spooling snapshots until it is back" in log.read_text()
