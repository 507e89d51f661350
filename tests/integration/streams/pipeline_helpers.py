"""Helpers for the end-to-end pipeline tests: a controlled fleet input, table fingerprints, waiting, the
settings stream workers under test run with."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from kafka import KafkaConsumer

from collectors.producer import SnapshotProducer
from collectors.simulator import SimulatedFleet
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from kcloud.topics import TopicSpec

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
OFFLINE_NODE = 1
OFFLINE_TICKS = range(10, 20)  # node 1 sends nothing for these ticks


def fleet_input(nodes: int = 4, ticks: int = 30, seed: int = 21) -> list[NodeSnapshot]:
    """`ticks` rounds 10 s apart from `nodes` simulated nodes, node 1 silent during OFFLINE_TICKS."""
    fleet = SimulatedFleet(nodes=nodes, seed=seed, node_prefix="e2e")
    return [
        fleet.snapshot(n, T0 + timedelta(seconds=10 * t), seq=t)
        for t in range(ticks)
        for n in range(nodes)
        if not (n == OFFLINE_NODE and t in OFFLINE_TICKS)
    ]


def send(settings: Settings, snapshots: list[NodeSnapshot]) -> None:
    producer = SnapshotProducer(settings)
    producer.send_all(snapshots)
    producer.flush()
    producer.close()


def scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def wait_until(check: Callable[[], bool], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


_FINGERPRINTS = {
    "device_samples": "SELECT count(*), md5(string_agg(concat_ws('|', d.device_uuid, s.time, s.util_pct, s.power_w,"
    " s.energy_j, s.health, s.workload_id), ',' ORDER BY d.device_uuid, s.time))"
    " FROM device_samples s JOIN devices d USING (device_id)",
    "device_rollup_1m": "SELECT count(*), md5(string_agg(concat_ws('|', d.device_uuid, r.bucket, r.util_avg,"
    " r.util_max, r.power_avg, r.energy_j, r.temp_avg, r.samples, r.seconds_observed), ','"
    " ORDER BY d.device_uuid, r.bucket)) FROM device_rollup_1m r JOIN devices d USING (device_id)",
    "deployment_events": "SELECT count(*), md5(string_agg(concat_ws('|', device_uuid, event, at, node_id, site_id,"
    " details::text), ',' ORDER BY device_uuid, at, event)) FROM deployment_events",
    "devices": "SELECT count(*), md5(string_agg(concat_ws('|', device_uuid, status, status_since, node_id,"
    " util_state, health), ',' ORDER BY device_uuid)) FROM devices",
    "nodes": "SELECT count(*), md5(string_agg(concat_ws('|', node_id, site_id, first_seen, last_seen), ','"
    " ORDER BY node_id)) FROM nodes",
    # the event-time alerts: a wall-clock stall (streams.stall) depends on when the input arrived, not on what
    "alerts": "SELECT count(*), md5(string_agg(concat_ws('|', fingerprint, rule, started_at, resolved_at), ','"
    " ORDER BY fingerprint, started_at)) FROM alerts WHERE rule NOT IN ('site_stalled', 'fleet_stalled')",
    "device_allocations": "SELECT count(*), md5(string_agg(concat_ws('|', d.device_uuid, a.since, a.tenant), ','"
    " ORDER BY d.device_uuid, a.since)) FROM device_allocations a JOIN devices d USING (device_id)",
}


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a content hash of every table the pipeline writes (ids and ledger hashes left out)."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url) as conn:
        for table, sql in _FINGERPRINTS.items():
            row = conn.execute(sql).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def read_topic(
    settings: Settings,
    spec: TopicSpec,
    expect: int,
    timeout_s: float = 30.0,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The first `expect` JSON messages of a project topic (those `where` keeps), in partition order (fails
    on a timeout)."""
    consumer = KafkaConsumer(
        settings.topic(spec),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    out: list[dict[str, Any]] = []
    try:
        for record in consumer:
            message = json.loads(record.value)
            if where is None or where(message):
                out.append(message)
            if len(out) >= expect:
                break
    finally:
        consumer.close()
    assert len(out) >= expect, f"{spec.name}: {len(out)} of {expect} messages within {timeout_s}s"
    return out


def prepared(settings: Settings) -> Settings:
    """`settings`, with their database migrated and their topics made."""
    migrate(settings.migration_database_url, settings)
    KafkaService(settings).ensure_topics()
    return settings


def worker_settings(base: Settings, *, app_prefix: str, batch_size: int) -> Settings:
    """`base` (a fresh database and topic namespace) as the stream workers of a pipeline test run it: a consumer
    group of its own, small batches, a short group session (a killed worker's partitions move on quickly),
    lifecycle thresholds of seconds; prepared."""
    return prepared(
        base.model_copy(
            update={
                "app_id": f"{app_prefix}-{base.topic_namespace}",
                # the broker's minimum: a killed worker's partitions are handed on quickly
                "worker_session_timeout_s": 6.0,
                "ingest_batch_seconds": 0.2,
                "ingest_batch_size": batch_size,
                "active_sustain_s": 30.0,
                "offline_after_intervals": 3,
                "kafka_partitions": 4,
                "retention_days": 30,
            }
        )
    )


def sibling_settings(settings: Settings, database_url: str, name: str) -> Settings:
    """The same settings on another database, topic namespace and consumer group (a second, clean run of the
    same input); prepared."""
    return prepared(
        settings.model_copy(
            update={
                "database_url": database_url,
                "app_id": settings.app_id + name,
                "topic_namespace": f"{settings.topic_namespace}{name}.",
            }
        )
    )
