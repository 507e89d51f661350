"""End to end on the real Kafka and PostgreSQL: a seeded fleet through stream worker processes gives the
expected samples, minute rollups and lifecycle events; replays, SIGKILLs and a second worker change
nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import (
    OFFLINE_NODE,
    OFFLINE_TICKS,
    T0,
    fingerprint,
    fleet_input,
    read_topic,
    scalar,
    send,
    sibling_settings,
    wait_until,
    worker_settings,
)

from infra.kafka import KafkaService
from kcloud.settings import Settings
from kcloud.topics import ALERTS
from streams.launcher import WorkerProcess

PORTS = iter(range(16100, 16200))


@pytest.fixture
def pipeline_settings(test_settings: Settings, kafka_up: KafkaService) -> Settings:
    return worker_settings(test_settings, app_prefix="e2e", batch_size=200)


def start_worker(settings: Settings, tmp_path: Path) -> WorkerProcess:
    port = next(PORTS)
    return WorkerProcess(settings, tmp_path / f"worker-{port}.log", web_port=port).start()


@pytest.fixture
def worker(pipeline_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = start_worker(pipeline_settings, tmp_path)
    yield proc
    proc.stop()


def wait_stored(url: str, expected: int, timeout: float = 120.0) -> None:
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM device_samples") >= expected,
        timeout,
        f"{expected} samples in device_samples",
    )


def test_seeded_fleet_gives_expected_samples_rollups_and_lifecycle(worker: WorkerProcess) -> None:
    url = worker.settings.effective_database_url
    snaps = fleet_input()
    send(worker.settings, snaps)
    expected = sum(len(s.devices) for s in snaps)
    wait_stored(url, expected)
    assert scalar(url, "SELECT count(*) FROM device_samples") == expected

    # a minute of one device, computed here from what was sent
    dev = snaps[0].devices[2]
    minute = T0 + timedelta(minutes=2)
    mine = [
        (s.collected_at, d)
        for s in snaps
        for d in s.devices
        if d.device_uuid == dev.device_uuid and minute <= s.collected_at < minute + timedelta(minutes=1)
    ]
    utils = [d.util_pct for _, d in mine if d.util_pct is not None]
    powers = [d.power_w for _, d in mine if d.power_w is not None]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT r.util_avg, r.util_max, r.power_avg, r.samples, r.seconds_observed FROM device_rollup_1m r "
            "JOIN devices d USING (device_id) WHERE d.device_uuid = %s AND r.bucket = %s",
            (dev.device_uuid, minute),
        ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(sum(utils) / len(utils), rel=1e-5)
    assert row[1] == pytest.approx(max(utils), rel=1e-5)
    assert row[2] == pytest.approx(sum(powers) / len(powers), rel=1e-5)
    assert (row[3], row[4]) == (len(mine), min(60.0, 10.0 * len(mine)))

    # every device commissioned once; node 1's devices offline after its silence, then returned
    n_devices = len({(d.device_uuid, d.subdevice) for s in snaps for d in s.devices})
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'returned'") >= 8,
        60,
        "returned events",
    )
    assert scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'commissioned'") == n_devices
    last_before = T0 + timedelta(seconds=10 * (OFFLINE_TICKS.start - 1))
    back = T0 + timedelta(seconds=10 * OFFLINE_TICKS.stop)
    node = f"e2e-{OFFLINE_NODE:06d}"
    with psycopg.connect(url) as conn:
        offline = conn.execute(
            "SELECT DISTINCT at FROM deployment_events WHERE event = 'offline' AND node_id = %s", (node,)
        ).fetchall()
        returned = conn.execute(
            "SELECT count(*), min(at), max(at) FROM deployment_events WHERE event = 'returned' AND node_id = %s",
            (node,),
        ).fetchone()
        others = conn.execute(
            "SELECT count(*) FROM deployment_events WHERE event IN ('offline', 'returned') AND node_id <> %s",
            (node,),
        ).fetchone()
    assert offline == [(last_before + timedelta(seconds=30),)]
    assert returned == (8, back, back)
    assert others == (0,)

    # the same silence as an alert: opened at the threshold, resolved when the node came back, and on the topic
    with psycopg.connect(url) as conn:
        silent = conn.execute(
            "SELECT node_id, started_at, resolved_at FROM alerts WHERE rule = 'node_silent'"
        ).fetchall()
    assert silent == [(node, last_before + timedelta(seconds=30), back)]
    messages = read_topic(worker.settings, ALERTS, expect=2, where=lambda m: m["rule"] == "node_silent")
    assert [(m["action"], m["fingerprint"]) for m in messages] == [
        ("opened", f"node_silent:{node}"),
        ("resolved", f"node_silent:{node}"),
    ]


def test_replaying_the_same_input_changes_no_table(worker: WorkerProcess) -> None:
    url = worker.settings.effective_database_url
    snaps = fleet_input(ticks=12)
    send(worker.settings, snaps)
    wait_stored(url, sum(len(s.devices) for s in snaps))
    wait_until(lambda: worker.counters()["messages"] >= len(snaps), 30, "all messages consumed")
    before = fingerprint(url)
    send(worker.settings, snaps)
    wait_until(lambda: worker.counters()["messages"] >= 2 * len(snaps), 60, "the replay consumed")
    assert fingerprint(url) == before


def test_sigkilled_worker_restarted_loses_and_doubles_nothing(pipeline_settings: Settings, tmp_path: Path) -> None:
    url = pipeline_settings.effective_database_url
    snaps = fleet_input(nodes=12, ticks=40)
    expected = sum(len(s.devices) for s in snaps)
    first = start_worker(pipeline_settings, tmp_path)
    try:
        send(pipeline_settings, snaps)
        wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") > expected // 4, 90, "a quarter stored")
        first.kill()
    finally:
        first.stop()
    stored_at_kill = scalar(url, "SELECT count(*) FROM device_samples")
    second = start_worker(pipeline_settings, tmp_path)
    try:
        wait_stored(url, expected)
    finally:
        second.stop()
    assert stored_at_kill < expected or stored_at_kill == expected
    assert scalar(url, "SELECT count(*) FROM device_samples") == expected
    assert scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'commissioned'") == 12 * 8
    assert (
        scalar(
            url,
            "SELECT count(*) FROM (SELECT device_id, time FROM device_samples GROUP BY 1, 2 HAVING count(*) > 1) dup",
        )
        == 0
    )


def test_two_workers_in_one_group_write_what_one_worker_writes(
    pipeline_settings: Settings, tmp_path: Path, database_factory: Callable[[], str]
) -> None:
    snaps = fleet_input(nodes=8, ticks=20)
    expected = sum(len(s.devices) for s in snaps)
    pair = [start_worker(pipeline_settings, tmp_path), start_worker(pipeline_settings, tmp_path)]
    try:
        wait_until(
            lambda: (
                all(w.counters()["assigned_partitions"] for w in pair)
                and sum(len(w.counters()["assigned_partitions"]) for w in pair) == 4
            ),
            90,
            "the group to split the 4 partitions between both workers",
        )
        send(pipeline_settings, snaps)
        wait_stored(pipeline_settings.effective_database_url, expected)
        wait_until(lambda: sum(w.counters()["messages"] for w in pair) >= len(snaps), 60, "all consumed")
        split = [w.counters()["messages"] for w in pair]
    finally:
        for w in pair:
            w.stop()
    assert all(n > 0 for n in split), f"one worker got no partition: {split}"

    fresh_database_url = database_factory()

    single = sibling_settings(pipeline_settings, fresh_database_url, "single")
    alone = start_worker(single, tmp_path)
    try:
        send(single, snaps)
        wait_stored(fresh_database_url, expected)
        wait_until(lambda: alone.counters()["messages"] >= len(snaps), 60, "all consumed")
    finally:
        alone.stop()
    assert fingerprint(pipeline_settings.effective_database_url) == fingerprint(fresh_database_url)
