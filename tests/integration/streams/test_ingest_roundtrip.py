"""A snapshot produced with kafka-python travels through a real stream worker into device_samples;
bad input lands on the dead-letter topic with its reason and original bytes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import read_topic, scalar

from collectors.producer import SnapshotProducer
from collectors.simulator import SimulatedFleet
from infra.kafka import KafkaService
from kcloud.db.schema import ACTIVITY_HEALTH_COLUMNS
from kcloud.records import DeadLetter
from kcloud.settings import Settings
from kcloud.topics import DEADLETTER
from streams.launcher import WorkerProcess


@pytest.fixture
def worker(test_settings: Settings, kafka_up: KafkaService, tmp_path: Path) -> Iterator[WorkerProcess]:
    settings = test_settings.model_copy(
        update={"app_id": f"kcloud-test-{test_settings.topic_namespace}", "ingest_batch_seconds": 0.2}
    )
    KafkaService(settings).ensure_topics()
    proc = WorkerProcess(settings, tmp_path / "worker.log", web_port=16066).start()
    yield proc
    proc.stop()


def _wait_for(url: str, sql: str, expected: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        got = scalar(url, sql)
        if got >= expected:
            return got
        time.sleep(0.3)
    return got


def test_snapshot_from_kafka_is_stored_once_even_when_replayed(worker: WorkerProcess) -> None:
    settings = worker.settings
    fleet = SimulatedFleet(nodes=3, seed=11, node_prefix="rt")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    snaps = fleet.tick(at, seq=1) + fleet.tick(at + timedelta(seconds=10), seq=2)
    producer = SnapshotProducer(settings)
    producer.send_all(snaps)
    producer.send_all(snaps[:2])  # a replay: must change nothing
    producer.flush()
    producer.close()

    url = settings.effective_database_url
    expected = sum(len(s.devices) for s in snaps)
    assert _wait_for(url, "SELECT count(*) FROM device_samples", expected) == expected
    # wait for the replayed messages to be consumed too, then check nothing doubled
    deadline = time.monotonic() + 30
    while worker.counters()["messages"] < len(snaps) + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.counters()["messages"] == len(snaps) + 2
    assert scalar(url, "SELECT count(*) FROM device_samples") == expected
    # a simulated node may be in an offline spell: count what the fleet sent
    assert scalar(url, "SELECT count(*) FROM devices") == len({d.device_uuid for s in snaps for d in s.devices})
    assert scalar(url, "SELECT count(*) FROM nodes WHERE node_id LIKE 'rt-%%'") == len({s.node.node_id for s in snaps})
    first = snaps[0].devices[0]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT s.util_pct, s.power_w, s.mem_total_bytes FROM device_samples s "
            "JOIN devices d USING (device_id) WHERE d.device_uuid = %s AND s.time = %s",
            (first.device_uuid, at),
        ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(first.util_pct)
    assert row[1] == pytest.approx(first.power_w)
    assert row[2] == first.mem_total_bytes
    # the activity and health counters arrive as sent: values where the device reports them, null elsewhere
    columns = ", ".join(f"s.{c}" for c in ACTIVITY_HEALTH_COLUMNS)
    with psycopg.connect(url) as conn:
        for dev in snaps[0].devices:
            stored = conn.execute(
                f"SELECT {columns} FROM device_samples s JOIN devices d USING (device_id) "
                "WHERE d.device_uuid = %s AND s.time = %s",
                (dev.device_uuid, at),
            ).fetchone()
            assert stored is not None
            sent = tuple(getattr(dev, c) for c in ACTIVITY_HEALTH_COLUMNS)
            assert stored == pytest.approx(sent), dev.device_uuid


def test_invalid_messages_reach_the_deadletter_topic_with_reason_and_bytes(worker: WorkerProcess) -> None:
    settings = worker.settings
    producer = SnapshotProducer(settings)
    bad = {
        b"{not json": "invalid_json",
        json.dumps({"schema": "kcloud.telemetry/9", "node": {}}).encode(): "unknown_schema",
        json.dumps(
            {
                "schema": "kcloud.telemetry/1",
                "node": {"site_id": "s"},
                "source": "sim",
                "collected_at": datetime.now(UTC).isoformat(),
                "seq": 1,
                "devices": [],
            }
        ).encode(): "invalid_field",
    }
    for value in bad:
        producer.send_raw(value, key=b"bad-node")
    good = SimulatedFleet(nodes=1, seed=3, node_prefix="ok").tick(datetime.now(UTC) - timedelta(minutes=1), 1)
    producer.send_all(good)
    producer.flush()
    producer.close()

    letters = [DeadLetter.model_validate(m) for m in read_topic(settings, DEADLETTER, expect=len(bad))]
    assert {dl.original(): dl.reason for dl in letters} == bad
    missing_node = next(dl for dl in letters if dl.reason == "invalid_field")
    assert "node.node_id" in missing_node.detail
    assert all(dl.stage == "ingest" and dl.partition is not None and dl.offset is not None for dl in letters)
    url = settings.effective_database_url
    assert _wait_for(url, "SELECT count(*) FROM device_samples", 8) == 8
