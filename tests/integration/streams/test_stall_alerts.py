"""Silence in wall-clock time: a site from which nothing is stored opens `site_stalled` while it lasts, the
whole fleet going quiet opens `fleet_stalled`, and both resolve when telemetry is stored again; once
each, however many workers watch. And a real worker whose input stops says so on the alerts topic."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer
from pipeline_helpers import scalar, send, wait_until, worker_settings

from collectors.simulator import SimulatedFleet
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from kcloud.topics import ALERTS
from streams.launcher import WorkerProcess
from streams.sink import SampleSink
from streams.stall import StallWatch

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def _site_snapshots(site: str, tick: int) -> list[NodeSnapshot]:
    fleet = SimulatedFleet(nodes=2, seed=9, node_prefix=site)
    out = []
    for n in range(2):
        snap = fleet.snapshot(n, T0 + timedelta(seconds=10 * tick), seq=tick)
        out.append(snap.model_copy(update={"node": snap.node.model_copy(update={"site_id": site})}))
    return out


def _open(url: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT rule, site_id FROM alerts WHERE resolved_at IS NULL AND rule IN ('site_stalled', 'fleet_stalled') "
            "ORDER BY rule, site_id"
        ).fetchall()
    return [(r, s) for r, s in rows]


def _all_alert_messages(settings: Settings) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        settings.topic(ALERTS),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return [json.loads(r.value) for r in consumer]
    finally:
        consumer.close()


def _resolved(url: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT rule, site_id FROM alerts WHERE resolved_at IS NOT NULL AND rule IN ('site_stalled', "
            "'fleet_stalled') ORDER BY rule, site_id"
        ).fetchall()
    return [(r, s) for r, s in rows]


def test_a_quiet_site_and_a_quiet_fleet_open_and_resolve_once(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"sample_interval_s": 1.0, "offline_after_intervals": 2})  # 2 s
    migrate(settings.effective_database_url, settings)
    url = settings.effective_database_url
    sink, one, two = SampleSink(settings), StallWatch(settings), StallWatch(settings)
    try:
        sink.write(_site_snapshots("site-a", 0) + _site_snapshots("site-b", 0))
        assert one.check() == [] and _open(url) == []
        time.sleep(1.2)
        sink.write(_site_snapshots("site-b", 1))
        time.sleep(1.2)  # site-a quiet for 2.4 s, site-b for 1.2 s
        opened = one.check()
        assert [(m.action, m.rule, m.site_id) for m in opened] == [("opened", "site_stalled", "site-a")]
        assert "site site-a" in opened[0].summary and opened[0].node_id is None
        assert two.check() == [] and one.check() == []  # a second worker, a second look: nothing doubled
        assert _open(url) == [("site_stalled", "site-a")]

        time.sleep(1.0)  # now both sites are quiet: the fleet is
        seen = one.check() + two.check()
        assert sorted((m.action, m.rule, m.site_id or "") for m in seen) == [
            ("opened", "fleet_stalled", ""),
            ("opened", "site_stalled", "site-b"),
        ]
        assert _open(url) == [("fleet_stalled", None), ("site_stalled", "site-a"), ("site_stalled", "site-b")]

        sink.write(_site_snapshots("site-a", 2))  # site-a speaks again: it and the fleet resolve, site-b stays
        back = two.check()
        assert sorted((m.action, m.rule, m.site_id or "") for m in back) == [
            ("resolved", "fleet_stalled", ""),
            ("resolved", "site_stalled", "site-a"),
        ]
        assert all(m.resolved_at is not None and m.resolved_at >= m.started_at for m in back)
        assert one.check() == [] and _open(url) == [("site_stalled", "site-b")]

        with psycopg.connect(url) as conn:  # site-b's cards are retired: nothing is due from it any more
            conn.execute(
                "UPDATE devices SET status = 'decommissioned', status_since = now() "
                "WHERE node_id IN (SELECT node_id FROM nodes WHERE site_id = 'site-b')"
            )
        sink.write(_site_snapshots("site-a", 3))
        assert [(m.action, m.site_id) for m in one.check()] == [("resolved", "site-b")]
        assert _open(url) == []
    finally:
        sink.close()
        one.close()
        two.close()


@pytest.fixture
def quick_worker(test_settings: Settings, kafka_up: KafkaService, tmp_path: Path) -> Iterator[WorkerProcess]:
    settings = worker_settings(test_settings, app_prefix="stall", batch_size=50).model_copy(
        update={"sample_interval_s": 1.0}  # the stall threshold: 3 intervals = 3 s; the watch looks every 5 s
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log", web_port=16290).start(90)
    try:
        yield worker
    finally:
        worker.stop()


def test_a_worker_whose_input_stops_opens_fleet_stalled_while_it_lasts(quick_worker: WorkerProcess) -> None:
    settings = quick_worker.settings
    url = settings.effective_database_url
    first = _site_snapshots("site-live", 0)
    send(settings, first)
    stored = sum(len(s.devices) for s in first)
    wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") >= stored, 60, "first samples stored")
    # nothing more arrives: within the threshold plus one look, the fleet is said to be stalled
    wait_until(lambda: ("fleet_stalled", None) in _open(url), 30, "fleet_stalled opened")
    again = _site_snapshots("site-live", 1)
    send(settings, again)
    # stored again: both resolve (and, the input stopping once more, open anew: each stall is its own row)
    wait_until(lambda: len(_resolved(url)) == 2, 30, "the stall alerts resolved")
    # and on the alerts topic: an opening and a resolution of each (more openings may follow: the input stops)
    wanted = {("opened", "fleet_stalled"), ("opened", "site_stalled"), ("resolved", "fleet_stalled")}
    wanted.add(("resolved", "site_stalled"))
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 30
    while not wanted <= seen:
        assert time.monotonic() < deadline, f"on {ALERTS.name}: {sorted(seen)}"
        seen = {(m["action"], m["rule"]) for m in _all_alert_messages(settings)}
