"""What a stream worker keeps in memory between batches (open minutes, lifecycle and alert state) survives
a worker dying and another taking its partitions over, and never hides a change made by another writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from collectors.simulator import SimulatedFleet
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from streams.deployments import LifecycleRecorder
from streams.sink import SampleSink

M0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
PARTITION = 4


def _ticks(first: int, last: int) -> list[NodeSnapshot]:
    fleet = SimulatedFleet(nodes=1, seed=9, node_prefix="handover")
    return [fleet.snapshot(0, M0 + timedelta(seconds=10 * k), seq=k) for k in range(first, last)]


def _write(sink: SampleSink, snaps: list[NodeSnapshot]) -> None:
    for snap in snaps:
        sink.write([snap], {snap.node.node_id: PARTITION})


def _minute(url: str, minute: datetime) -> list[tuple[int, int]]:
    """(rollup samples, raw samples) of every device for `minute`."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT coalesce(r.samples, 0), (SELECT count(*) FROM device_samples s WHERE s.device_id = d.device_id"
            "   AND s.time >= %(m)s AND s.time < %(m)s + interval '1 minute')::int "
            "FROM devices d LEFT JOIN device_rollup_1m r ON r.device_id = d.device_id AND r.bucket = %(m)s "
            "ORDER BY d.device_id",
            {"m": minute},
        ).fetchall()


def test_a_minute_left_open_by_a_dead_worker_is_rolled_up_by_the_next_owner(test_settings: Settings) -> None:
    migrate(test_settings.effective_database_url, test_settings)
    url = test_settings.effective_database_url
    first = SampleSink(test_settings)
    _write(first, _ticks(0, 5))  # 05:00:00 .. 05:00:40, then the worker dies without closing its minute
    first.close()
    assert all(rollup == 0 and raw == 5 for rollup, raw in _minute(url, M0))
    second = SampleSink(test_settings)
    try:
        _write(second, _ticks(6, 8))  # the node goes on in the next minute, on the new owner
        assert [r for r, _ in _minute(url, M0)] == [raw for _, raw in _minute(url, M0)] == [5] * 8
    finally:
        second.close()


def test_a_node_that_falls_silent_under_a_dead_worker_has_its_last_minute_rolled_up(test_settings: Settings) -> None:
    migrate(test_settings.effective_database_url, test_settings)
    url = test_settings.effective_database_url
    first = SampleSink(test_settings)
    _write(first, _ticks(0, 3))
    first.close()
    second = SampleSink(test_settings)
    try:
        assert second.close_minutes(assigned=[PARTITION - 1]) == 0  # not its partition: nothing to do
        assert second.close_minutes(assigned=[PARTITION]) == 8  # takes the partition over: its nodes' minutes
        assert _minute(url, M0) == [(3, 3)] * 8
        assert second.close_minutes(assigned=[PARTITION]) == 0  # once
    finally:
        second.close()


def test_a_decommissioning_by_an_operator_is_seen_by_the_worker_holding_the_device(test_settings: Settings) -> None:
    migrate(test_settings.effective_database_url, test_settings)
    url = test_settings.effective_database_url
    snaps = _ticks(0, 4)
    uuid = snaps[0].devices[3].device_uuid
    sink = SampleSink(test_settings)
    try:
        _write(sink, snaps[:3])  # the worker holds the device's state in memory now
        with psycopg.connect(url) as conn, conn.transaction():
            LifecycleRecorder(test_settings).decommission(conn, uuid, snaps[2].collected_at, "RMA")
        result = sink.write([snaps[3]], {snaps[3].node.node_id: PARTITION})
    finally:
        sink.close()
    returned = [e for e in result.events if e.device_uuid == uuid]
    assert [(e.event, e.details.get("was")) for e in returned] == [("returned", "decommissioned")]
