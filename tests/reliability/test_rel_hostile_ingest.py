"""Hostile snapshots straight on the telemetry topic, among honest traffic, through a real `kcloud streams
worker`: another vendor's devices and nodes, clocks running ahead, a workload flood and an exhausted
workload sequence, a snapshot the database refuses every time, records keyed by another node. Each is
dead-lettered or bounded; every honest sample is stored once, and the worker never retries forever."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.partitioner.default import murmur2
from pipeline_helpers import T0, prepared
from reliability_helpers import count_samples, record_figures, start_worker

from collectors.simulator import SimulatedFleet
from kcloud.records import DeviceSample, NodeSnapshot, Throughput
from kcloud.settings import Settings
from kcloud.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.reliability

Record = tuple[bytes, bytes]


def _honest(nodes: int, ticks: int, prefix: str, start: datetime = T0) -> list[NodeSnapshot]:
    fleet = SimulatedFleet(nodes=nodes, seed=77, node_prefix=prefix)
    return [fleet.snapshot(n, start + timedelta(seconds=10 * t), seq=t) for t in range(ticks) for n in range(nodes)]


def _records(snapshots: list[NodeSnapshot]) -> list[Record]:
    return [(s.node.node_id.encode(), s.to_json_bytes()) for s in snapshots]


def _run(settings: Settings, tmp_path: Path, phases: list[list[Record]], between: Callable[[int], None]) -> Any:
    """Send each phase and wait until the worker has finished it (`between(i)` after phase i); returns the
    worker's final counters. The worker must stay up, and end with no database retry."""
    worker = start_worker(settings, tmp_path, "hostile")
    sent = 0
    try:
        assert worker.proc is not None
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
        for i, phase in enumerate(phases):
            for key, value in phase:
                producer.send(settings.topic(TELEMETRY), key=key, value=value)
            producer.flush()
            sent += len(phase)
            deadline = time.monotonic() + 90
            while True:
                assert worker.proc.poll() is None, f"the worker exited; see {worker.log_path}"
                now = worker.counters()
                if now["messages"] >= sent and now["deadlettered"] + now["snapshots_valid"] >= sent:
                    break
                assert time.monotonic() < deadline, f"phase {i}: {now} after sending {sent}; see {worker.log_path}"
                time.sleep(0.5)
            between(i)
        producer.close()
        final = worker.counters()
    finally:
        worker.stop()
    assert final["db_retries"] == 0, final
    return final


def _dead_letters(settings: Settings) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        settings.topic(DEADLETTER),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=4000,
    )
    try:
        return [json.loads(r.value) for r in consumer]
    finally:
        consumer.close()


def _rows(settings: Settings, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.effective_database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _other_vendor(*vendors: str) -> str:
    return next(v for v in ("furiosa", "rebellions", "sapeon") if v not in vendors)


def _as_node(template: NodeSnapshot, name: str, at: datetime, seq: int) -> NodeSnapshot:
    """`template`'s devices, renamed, on node `name` at `at`."""
    devices = [d.model_copy(update={"device_uuid": f"{name}-{i}"}) for i, d in enumerate(template.devices)]
    node = template.node.model_copy(update={"node_id": name})
    return template.model_copy(update={"node": node, "collected_at": at, "seq": seq, "devices": devices})


def test_another_vendors_devices_and_nodes_are_dead_lettered_and_nothing_of_them_is_stored(
    rel_settings: Settings, tmp_path: Path
) -> None:
    honest = _honest(nodes=4, ticks=12, prefix="own")
    first, rest = honest[:16], honest[16:]
    victim_dev, victim_node = first[0].devices[0], first[1].node
    node_vendor = first[1].devices[0].vendor
    thief = _other_vendor(victim_dev.vendor, node_vendor)
    at = first[-1].collected_at + timedelta(seconds=5)
    own = honest[0]
    steal_device = NodeSnapshot(
        node={"node_id": "thief-node", "site_id": own.node.site_id, "hostname": "thief"},
        source="push:furiosa",
        collected_at=at,
        seq=1,
        devices=[victim_dev.model_copy(update={"vendor": thief, "util_pct": 99.0, "health": "failed"})],
    )
    steal_node = first[1].model_copy(
        update={
            "node": victim_node.model_copy(update={"site_id": "elsewhere", "hostname": "stolen"}),
            "collected_at": at,
            "devices": [d.model_copy(update={"vendor": thief}) for d in first[1].devices],
        }
    )
    rename_node = first[1].model_copy(  # its own vendor's devices, at its site, but another vendor's uuid set
        update={
            "node": victim_node.model_copy(update={"hostname": "stolen"}),
            "collected_at": at,
            "devices": [
                DeviceSample(device_uuid=f"thief-{i}", vendor=thief, kind="npu", util_pct=1.0) for i in range(3)
            ],
        }
    )
    attacks = [steal_device, steal_node, rename_node]
    # the node's own vendor, dated before what is stored: its samples count, its hostname does not
    late_rename = first[1].model_copy(
        update={
            "node": victim_node.model_copy(update={"hostname": "renamed-from-the-past"}),
            "collected_at": first[1].collected_at - timedelta(seconds=5),
        }
    )
    honest = [*honest, late_rename]
    host_before: list[tuple[Any, ...]] = []

    def between(i: int) -> None:
        if i == 0:
            host_before.extend(
                _rows(
                    rel_settings,
                    "SELECT site_id, hostname, vendor_id FROM nodes WHERE node_id = %s",
                    (victim_node.node_id,),
                )
            )

    phases = [_records(first), _records(attacks) + _records([late_rename, *rest])]
    final = _run(rel_settings, tmp_path, phases, between)
    letters = _dead_letters(rel_settings)
    counted = count_samples(rel_settings.effective_database_url, honest)
    reasons = sorted(str(dl["reason"]) for dl in letters)
    originals = {base64.b64decode(str(dl["original_b64"])) for dl in letters}
    node_after = _rows(
        rel_settings, "SELECT site_id, hostname, vendor_id FROM nodes WHERE node_id = %s", (victim_node.node_id,)
    )
    foreign = _rows(
        rel_settings,
        "SELECT count(*) FROM devices WHERE vendor_id = %s OR node_id = 'thief-node' OR device_uuid LIKE %s",
        (thief, "thief-%"),
    )[0][0]
    stolen_events = _rows(
        rel_settings,
        "SELECT count(*) FROM deployment_events WHERE device_uuid = %s AND event IN ('relocated', 'health_changed')",
        (victim_dev.device_uuid,),
    )[0][0]
    record_figures(
        "hostile_cross_vendor",
        {"attacks_sent": len(attacks), "dead_letters": reasons, "samples": counted, "foreign_rows": foreign},
    )
    assert reasons == ["device_owned_by_other_vendor", "node_at_other_site", "node_owned_by_other_vendor"], letters
    assert originals == {s.to_json_bytes() for s in attacks}
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted
    assert node_after == host_before and node_after[0][2] == node_vendor, (host_before, node_after)
    assert foreign == 0 and stolen_events == 0
    assert final["deadlettered"] == len(attacks)


def _keys_on_every_partition(prefix: str, partitions: int) -> list[str]:
    names: dict[int, str] = {}
    i = 0
    while len(names) < partitions:
        name = f"{prefix}-{i}"
        names.setdefault((murmur2(name.encode()) & 0x7FFFFFFF) % partitions, name)
        i += 1
    return [names[p] for p in range(partitions)]


@pytest.mark.parametrize(
    ("window_s", "ahead_s"),
    [(300.0, 299.0), (3600.0, 55 * 60.0)],
    ids=["default-window-edge", "55-min-in-a-wider-window"],
)
def test_clocks_running_ahead_move_no_one_elses_event_time_nor_their_own_nodes_rollups(
    rel_settings: Settings, tmp_path: Path, window_s: float, ahead_s: float
) -> None:
    settings = prepared(rel_settings.model_copy(update={"max_clock_ahead_s": window_s}))
    honest = _honest(nodes=8, ticks=30, prefix="tick")
    partitions_with_honest = {(murmur2(s.node.node_id.encode()) & 0x7FFFFFFF) % 4 for s in honest}
    ahead_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ahead_s)
    template = honest[0]
    ahead = [
        _as_node(template, name, ahead_at, k)
        for k in range(8)
        for name in _keys_on_every_partition("ahead", 4)
        if (murmur2(name.encode()) & 0x7FFFFFFF) % 4 in partitions_with_honest
    ][:30]
    # one node's clock jumps 55 min ahead once, then runs right again: its own minutes must still roll up
    now = datetime.now(UTC).replace(microsecond=0)
    jumpy = [
        _as_node(template, "jumpy", at, k)
        for k, at in enumerate([ahead_at] + [now - timedelta(seconds=60 - 10 * t) for t in range(7)])
    ]
    jumpy_minutes = sorted({s.collected_at.replace(second=0) for s in jumpy[1:]})
    rollup_sql = (
        "SELECT count(DISTINCT r.bucket) FROM device_rollup_1m r JOIN devices d USING (device_id) "
        "WHERE d.node_id = 'jumpy' AND r.bucket = ANY(%s)"
    )

    def settle(i: int) -> None:
        """Until the jumpy node's minutes are rolled up, and for one silence sweep after the last batch."""
        t0 = time.monotonic()
        sweep_s = max(5.0, settings.sample_interval_s * 3)
        while time.monotonic() - t0 < 75 and _rows(settings, rollup_sql, (jumpy_minutes,))[0][0] < len(jumpy_minutes):
            time.sleep(1.0)
        time.sleep(max(0.0, sweep_s + 2 - (time.monotonic() - t0)))

    traffic = _records(honest[:80]) + _records(ahead) + _records(jumpy) + _records(honest[80:])
    final = _run(settings, tmp_path, [traffic], settle)
    url = settings.effective_database_url
    counted = count_samples(url, [*honest, *ahead, *jumpy])
    honest_uuids = sorted({d.device_uuid for s in honest for d in s.devices})
    flaps = _rows(
        settings,
        "SELECT event, count(*) FROM deployment_events WHERE device_uuid = ANY(%s) "
        "AND event IN ('offline', 'returned') GROUP BY 1",
        (honest_uuids,),
    )
    silent = _rows(settings, "SELECT count(*) FROM alerts WHERE rule = 'node_silent' AND node_id LIKE %s", ("tick-%",))[
        0
    ][0]
    rolled = _rows(settings, rollup_sql, (jumpy_minutes,))[0][0]
    record_figures(
        f"hostile_clock_ahead_{int(ahead_s)}s",
        {
            "max_clock_ahead_s": window_s,
            "ahead_s": ahead_s,
            "ahead_snapshots": len(ahead) + 1,
            "honest_offline_returned": dict(flaps),
            "node_silent_alerts": silent,
            "samples": counted,
            "late_samples": final["late_samples"],
            "jumpy_minutes_rolled_up": f"{rolled} of {len(jumpy_minutes)}",
        },
    )
    assert len(ahead) >= len(partitions_with_honest)
    assert flaps == [] and silent == 0, (flaps, silent)
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted
    assert final["late_samples"] == 0 and rolled == len(jumpy_minutes), (final, rolled)


def _flood(node: str, vendor: str, devices: int, at: datetime, site: str) -> NodeSnapshot:
    return NodeSnapshot(
        node={"node_id": node, "site_id": site},
        source="sim",
        collected_at=at,
        seq=0,
        devices=[
            DeviceSample(
                device_uuid=f"{node}-{i}",
                vendor=vendor,
                kind="npu",
                util_pct=50.0,
                throughput=Throughput(value=float(i), unit="tokens_per_s", workload=f"{node}-w{i}"),
            )
            for i in range(devices)
        ],
    )


def test_a_workload_flood_is_capped_and_an_exhausted_sequence_stalls_nothing(
    rel_settings: Settings, tmp_path: Path
) -> None:
    cap = 20
    settings = prepared(rel_settings.model_copy(update={"max_workloads_per_vendor": cap}))
    honest = _honest(nodes=4, ticks=10, prefix="work")
    at = honest[0].collected_at
    site = honest[0].node.site_id
    flood_a = _flood("flood-a", "floodco-a", 300, at, site)
    flood_b = _flood("flood-b", "floodco-b", 300, at, site)

    def exhaust(i: int) -> None:
        if i == 0:  # as if 32,765 workloads had been created before: three ids left
            with psycopg.connect(settings.effective_database_url) as conn:
                conn.execute("ALTER TABLE workloads ALTER COLUMN workload_id RESTART WITH 32765")

    phases = [_records([*honest[:20], flood_a]), _records([flood_b, *honest[20:]])]
    final = _run(settings, tmp_path, phases, exhaust)
    counted = count_samples(settings.effective_database_url, [*honest, flood_a, flood_b])
    per_vendor = dict(
        _rows(settings, "SELECT vendor_id, count(*) FROM workloads WHERE vendor_id IS NOT NULL GROUP BY 1")
    )
    with_throughput = _rows(
        settings,
        "SELECT count(*) FROM device_samples s JOIN devices d USING (device_id) "
        "WHERE d.node_id LIKE %s AND s.throughput IS NOT NULL",
        ("flood-%",),
    )[0][0]
    sent_with = sum(1 for s in [*honest, flood_a, flood_b] for d in s.devices if d.throughput is not None)
    stored_with = _rows(settings, "SELECT count(*) FROM device_samples WHERE throughput IS NOT NULL")[0][0]
    top = _rows(settings, "SELECT max(workload_id) FROM workloads")[0][0]
    record_figures(
        "hostile_workload_flood",
        {
            "workloads_sent": 600,
            "workloads_created": per_vendor,
            "top_workload_id": top,
            "throughput_refused": final["throughput_refused"],
            "samples": counted,
            "db_retries": final["db_retries"],
        },
    )
    assert per_vendor.get("floodco-a") == cap and 1 <= per_vendor.get("floodco-b", 0) <= 3 and top == 32767, per_vendor
    assert with_throughput == cap + per_vendor["floodco-b"], with_throughput
    assert final["throughput_refused"] == sent_with - stored_with, (final, sent_with, stored_with)
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted


def test_a_snapshot_the_database_always_refuses_is_dead_lettered_and_the_rest_is_stored(
    rel_settings: Settings, tmp_path: Path
) -> None:
    with psycopg.connect(rel_settings.effective_database_url) as conn:  # a rule only the test's database has
        conn.execute("ALTER TABLE devices ADD CONSTRAINT test_poison CHECK (device_uuid NOT LIKE 'poison-%')")
    honest = _honest(nodes=4, ticks=10, prefix="bisect")
    poison = _flood("poison", "furiosa", 1, honest[0].collected_at, honest[0].node.site_id)
    poison = poison.model_copy(update={"devices": [poison.devices[0].model_copy(update={"device_uuid": "poison-1"})]})
    # the same node keyed as another one: it would land on another partition
    stray = honest[5].model_copy(update={"collected_at": honest[5].collected_at + timedelta(seconds=3)})
    mismatched = (honest[6].node.node_id.encode(), stray.to_json_bytes())
    traffic = _records(honest[:18]) + _records([poison]) + [mismatched] + _records(honest[18:])
    final = _run(rel_settings, tmp_path, [traffic], lambda i: None)
    letters = _dead_letters(rel_settings)
    counted = count_samples(rel_settings.effective_database_url, honest)
    record_figures(
        "hostile_refused_write",
        {
            "dead_letters": sorted(str(dl["reason"]) for dl in letters),
            "rejected_writes": final["db_rejected_writes"],
            "db_retries": final["db_retries"],
            "samples": counted,
        },
    )
    by_reason = {str(dl["reason"]): dl for dl in letters}
    assert sorted(by_reason) == ["database_rejected", "key_mismatch"] and len(letters) == 2, letters
    assert base64.b64decode(str(by_reason["database_rejected"]["original_b64"])) == poison.to_json_bytes()
    assert "23514" in str(by_reason["database_rejected"]["detail"])
    assert base64.b64decode(str(by_reason["key_mismatch"]["original_b64"])) == stray.to_json_bytes()
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted
    assert final["db_rejected_writes"] >= 1
