"""A broker that answers, but more slowly than the source produces: past the producer's backlog limit new
snapshots go to the disk spool instead of memory, and still every one arrives once and in `seq` order."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from collectors.metrics import AgentMetrics
from collectors.producer import SnapshotProducer
from collectors.simulator import SimulatedFleet
from collectors.spool import Spool
from infra.kafka import KafkaService
from kcloud.records import parse_snapshot
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY

T0 = datetime(2026, 11, 3, 5, tzinfo=UTC)


def _consume(settings: Settings, expected: int) -> dict[str, list[int]]:
    consumer = KafkaConsumer(
        settings.topic(TELEMETRY),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    seqs: dict[str, list[int]] = defaultdict(list)
    got = 0
    deadline = time.monotonic() + 30
    try:
        while got < expected and time.monotonic() < deadline:
            for message in consumer:
                snap = parse_snapshot(message.value)
                seqs[snap.node.node_id].append(snap.seq)
                got += 1
    finally:
        consumer.close()
    return seqs


def test_snapshots_past_the_backlog_limit_are_spooled_and_still_arrive_once_in_order(
    base_settings: Settings, kafka_up: KafkaService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings.model_copy(update={"topic_namespace": f"t{uuid.uuid4().hex[:8]}."})
    KafkaService(settings).ensure_topics()
    fleet = SimulatedFleet(30, seed=9)
    metrics = AgentMetrics()
    producer = SnapshotProducer(
        settings, spool=Spool(tmp_path / "spool", 64 * 2**20), metrics=metrics, max_backlog_bytes=20_000
    )
    deadline = time.monotonic() + 30
    while not producer.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    ticks = 15
    sent = 0
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors"):
        for seq in range(ticks):
            sent += producer.send_records(fleet.tick_bytes(T0 + timedelta(seconds=10 * seq), seq))
        assert producer.close(timeout=60)

    assert (metrics.registry.get_sample_value("kcloud_collector_spooled_total") or 0) > 0
    assert any("slower than the source produces" in r.getMessage() for r in caplog.records)
    seqs = _consume(settings, sent)
    assert sum(len(v) for v in seqs.values()) == sent
    for node, got in seqs.items():
        assert got == sorted(set(got)), f"{node}: not once and in order: {got}"
        online = [s for s in range(ticks) if fleet.online(int(node.rsplit("-", 1)[1]), T0 + timedelta(seconds=10 * s))]
        assert got == online
