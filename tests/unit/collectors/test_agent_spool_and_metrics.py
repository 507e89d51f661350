"""The agent while Kafka cannot be reached (nothing listens on its port): sampling goes on, snapshots
spool on disk, a full spool drops its oldest and counts them (metric and warning), `seq` survives a
restart, and the agent's own metrics are served on `--metrics-port`."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from collectors.agent import Agent, AgentOptions, CollectorSource, SimSource
from collectors.base import build_collector
from collectors.delivery import decode_record
from collectors.simulator import SimulatedFleet
from collectors.spool import Spool
from kcloud.records import NodeRef, parse_snapshot
from kcloud.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NODES = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def unreachable(tmp_path: Path) -> Settings:
    """Settings whose Kafka bootstrap is a port nothing listens on."""
    return Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{_free_port()}")


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in the exposition"
    return float(match.group(1))


def _spooled(directory: Path) -> list[tuple[str, int]]:
    spool = Spool(directory, max_bytes=1 << 30)
    try:
        records = spool.peek(1_000_000, max_bytes=1 << 30)
    finally:
        spool.close()
    out = []
    for _, record in records:
        key, value = decode_record(record)
        snap = parse_snapshot(value)
        assert key == snap.node.node_id.encode()
        out.append((snap.node.node_id, snap.seq))
    return out


def test_full_spool_drops_the_oldest_snapshots_counts_them_in_the_metrics_and_warns(
    unreachable: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "spool"
    ticks = 8
    options = AgentOptions(
        interval_s=0.01, spool_dir=spool_dir, spool_max_bytes=200 * 1024, kafka_timeout_s=1, max_ticks=ticks
    )
    agent = Agent(SimSource(SimulatedFleet(NODES, seed=3)), unreachable, options)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors"):
        assert agent.run() == 0
    assert time.monotonic() - started < 10  # sampling never waited for the broker

    left = _spooled(spool_dir)
    exposition = agent.metrics.exposition().decode()
    # the simulated fleet takes nodes offline in spells (by wall-clock time): count what was produced
    produced = _metric(exposition, 'kcloud_collector_snapshots_total{source="sim"}')
    assert ticks * NODES * 0.5 < produced <= ticks * NODES
    dropped = _metric(exposition, "kcloud_collector_spool_dropped_total")
    assert 0 < dropped == produced - len(left)
    seqs = [seq for _, seq in left]
    assert seqs == sorted(seqs) and seqs[-1] == ticks - 1  # the newest are kept, in order
    assert min(seqs) > 0  # the oldest went
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"spool {spool_dir}: full" in w and "dropped the" in w for w in warnings), warnings


def test_seq_continues_after_a_restart_and_spooled_snapshots_are_kept(unreachable: Settings, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    fleet = SimulatedFleet(2, seed=3)
    options = AgentOptions(interval_s=0.01, spool_dir=spool_dir, kafka_timeout_s=1, max_ticks=3)
    Agent(SimSource(fleet), unreachable, options).run()
    Agent(SimSource(fleet), unreachable, options).run()
    left = _spooled(spool_dir)
    for node in ("sim-000000", "sim-000001"):
        assert [seq for n, seq in left if n == node] == [0, 1, 2, 3, 4, 5]


def test_once_without_kafka_fails_with_one_line_and_keeps_the_snapshot(unreachable: Settings, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    collector = build_collector(
        "prom", {"exporter": "furiosa", "file": FIXTURES / "prometheus/rngd-furiosa-exporter-2025.1.prom"}
    )
    source = CollectorSource(collector, NodeRef(node_id="npu-01", site_id="naver-chuncheon"), origin="page")
    options = AgentOptions(once=True, spool_dir=spool_dir, kafka_timeout_s=1)
    with pytest.raises(Exception, match=rf"not every snapshot was acknowledged .* spool {spool_dir}"):
        Agent(source, unreachable, options).run()
    assert _spooled(spool_dir) == [("npu-01", 0)]


def test_metrics_port_serves_samples_read_skipped_lines_and_spool_depth(unreachable: Settings, tmp_path: Path) -> None:
    page = tmp_path / "page.prom"
    page.write_text("}}} garbage\n" + (FIXTURES / "prometheus/titan-v-dcgm-exporter-issue58.prom").read_text())
    collector = build_collector("prom", {"exporter": "dcgm", "file": page})
    source = CollectorSource(collector, NodeRef(node_id="gpu-01", site_id="kt-cheonan"), origin=str(page))
    port = _free_port()
    options = AgentOptions(interval_s=0.05, spool_dir=tmp_path / "spool", kafka_timeout_s=1, metrics_port=port)
    agent = Agent(source, unreachable, options, metrics=None)
    source.metrics = agent.metrics
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                text = ""
            if text and _metric(text, "kcloud_collector_spool_depth_records") >= 3:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    ticks = _metric(text, 'kcloud_collector_ticks_total{outcome="ok",source="prom:dcgm"}')
    assert ticks >= 3
    assert _metric(text, 'kcloud_collector_samples_read_total{source="prom:dcgm"}') == 2 * ticks
    assert _metric(text, 'kcloud_collector_lines_skipped_total{reason="malformed_line",source="prom:dcgm"}') == ticks
    assert _metric(text, "kcloud_collector_spool_depth_records") >= 3
    assert "kcloud_collector_produce_latency_seconds_bucket" in text
