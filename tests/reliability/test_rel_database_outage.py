"""PostgreSQL stopped for 20 s while telemetry keeps arriving: the stream worker pauses consumption and
retries its write with growing backoff (one process throughout, no crash loop, nothing dropped); once the
database is back every sample sent is stored exactly once.

The database server here is a dedicated cluster (port 54400, or a free port when another process holds
it; state under .kcloud/test-rel-pg), because the test stops it; the shared test cluster is never touched.
Kafka is the shared test broker.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import fleet_input, scalar, send, wait_until
from reliability_helpers import ROOT, count_samples, free_port, record_figures, start_worker

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from infra.process import port_open
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings

pytestmark = pytest.mark.reliability

OUTAGE_S = 20.0
PG_PORT = 54400


@pytest.fixture
def own_postgres(base_settings: Settings) -> Iterator[PostgresService]:
    """A PostgreSQL cluster of this test's own, which the test may stop and start."""
    port = PG_PORT
    svc = PostgresService(
        base_settings.model_copy(update={"state_dir": ROOT / ".kcloud" / "test-rel-pg", "pg_port": port})
    )
    if svc.server_pid() is None and port_open("127.0.0.1", port):
        svc = PostgresService(svc.settings.model_copy(update={"pg_port": free_port()}))
    svc.up()
    try:
        yield svc
    finally:
        svc.down()


@pytest.fixture
def outage_settings(
    own_postgres: PostgresService, base_settings: Settings, kafka_up: KafkaService, in_tmp: Path
) -> Iterator[Settings]:
    """A fresh database on the dedicated cluster, this test's own topics and consumer group."""
    name = "rel_" + uuid.uuid4().hex[:10]
    admin = own_postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    namespace = f"t{uuid.uuid4().hex[:8]}."
    settings = base_settings.model_copy(
        update={
            "database_url": own_postgres.url.rsplit("/", 1)[0] + "/" + name,
            "topic_namespace": namespace,
            "app_id": f"rel-{namespace}",
            "ingest_batch_seconds": 0.2,
            "ingest_batch_size": 20,
            "kafka_partitions": 4,
            "retention_days": 30,
        }
    )
    migrate(settings.effective_database_url, settings)
    KafkaService(settings).ensure_topics()
    yield settings
    if own_postgres.server_pid() is None:
        own_postgres.up()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _paced_sender(settings: Settings, snaps: list[NodeSnapshot], per_tick: int, pause_s: float) -> threading.Thread:
    """Send `snaps` one tick (`per_tick` snapshots) every `pause_s`, as live collectors would."""

    def run() -> None:
        for i in range(0, len(snaps), per_tick):
            send(settings, snaps[i : i + per_tick])
            time.sleep(pause_s)

    thread = threading.Thread(target=run, name="paced-sender", daemon=True)
    thread.start()
    return thread


def test_database_outage_pauses_ingest_and_loses_nothing(
    outage_settings: Settings, own_postgres: PostgresService, tmp_path: Path
) -> None:
    url = outage_settings.effective_database_url
    nodes = 6
    snaps = fleet_input(nodes=nodes, ticks=50)
    per_tick = [s.seq for s in snaps].count(0)
    worker = start_worker(outage_settings, tmp_path, "outage")
    try:
        pid = worker.proc.pid if worker.proc else None
        sender = _paced_sender(outage_settings, snaps, per_tick, 0.6)
        wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") > 200, 60, "ingest under way")

        own_postgres.down()
        stopped = time.monotonic()
        time.sleep(5.0)  # the batch in flight fails and the worker starts backing off
        paused_at = worker.counters()
        time.sleep(OUTAGE_S - (time.monotonic() - stopped))
        before_restart = worker.counters()
        own_postgres.up()
        outage = time.monotonic() - stopped

        sender.join(timeout=60)
        expected = sum(len(s.devices) for s in snaps)
        wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") >= expected, 90, "every sample stored")
        wait_until(lambda: worker.counters()["messages"] >= len(snaps), 60, "every message consumed")
        after = worker.counters()
        assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid
    finally:
        worker.stop()

    log = worker.log_path.read_text(errors="replace")
    failed = r"database write of \d+ snapshots failed .*?; retrying in ([\d.]+)s"
    delays = [float(d) for d in re.findall(failed, log, re.DOTALL)]
    counted = count_samples(url, snaps)
    record_figures(
        "database_outage",
        {
            "outage_s": round(outage, 1),
            "messages_sent": len(snaps),
            "samples": counted,
            "db_retries": after["db_retries"],
            "backoff_delays_s": delays,
            "messages_consumed_5s_into_outage": paused_at["messages"],
            "messages_consumed_at_restart": before_restart["messages"],
        },
    )
    # paused: not one message taken while the batch in flight waits for the database
    assert before_restart["messages"] == paused_at["messages"], (paused_at, before_restart)
    assert paused_at["messages"] < len(snaps)
    # backoff, not a hot loop: the delays grow to the 10 s cap, a handful of retries in 25 s
    assert delays and delays == sorted(delays) and delays[-1] == 10.0, delays
    assert 3 <= after["db_retries"] <= 15, after["db_retries"]
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (expected, 0, 0, 0), counted
    assert after["deadlettered"] == 0
