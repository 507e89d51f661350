"""`kcloud device decommission` from another process while a sink holds the device's lifecycle in memory:
the sink's next batch starts from the decommissioning (no second `offline`, no `returned` dated before
it), and samples older than the decommissioning change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from typer.testing import CliRunner

from collectors.simulator import SimulatedFleet
from console.main import app
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.settings import Settings
from streams.launcher import settings_env
from streams.sink import SampleSink


def test_a_decommission_between_two_batches_is_where_the_next_batch_starts(
    test_settings: Settings, kafka_up: KafkaService
) -> None:
    settings = test_settings.model_copy(update={"offline_after_intervals": 3})  # 30 s
    migrate(settings.effective_database_url, settings)
    KafkaService(settings).ensure_topics()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=300)
    fleet = SimulatedFleet(nodes=1, seed=23, node_prefix="dcm")
    card = fleet.snapshot(0, t0, seq=0).devices[0].device_uuid

    def tick(t: int, with_card: bool = True) -> list:  # type: ignore[type-arg]
        snap = fleet.snapshot(0, t0 + timedelta(seconds=10 * t), seq=t)
        if not with_card:
            snap = snap.model_copy(update={"devices": [d for d in snap.devices if d.device_uuid != card]})
        return [snap]

    sink = SampleSink(settings)
    try:
        for t in range(5):
            sink.write(tick(t))
        for t in range(5, 12):  # the card is gone, its node reports: offline at its last sample + 30 s
            sink.write(tick(t, with_card=False))
        sink.sweep()
        result = CliRunner().invoke(
            app, ["device", "decommission", card, "--reason", "retired"], env=settings_env(settings)
        )
        assert result.exit_code == 0, result.output
        for t in range(12, 30):  # the card back, dated before the command's clock (t0 + 300 s) and after
            sink.write(tick(t))
            sink.sweep()
    finally:
        sink.close()
    with psycopg.connect(settings.effective_database_url) as conn:
        events = conn.execute(
            "SELECT event, at FROM deployment_events WHERE device_uuid = %s AND event IN "
            "('commissioned', 'offline', 'returned', 'decommissioned') ORDER BY seq",
            (card,),
        ).fetchall()
    names = [e for e, _ in events]
    assert names[:3] == ["commissioned", "offline", "decommissioned"], events
    assert names.count("offline") == 1, events
    decommissioned_at = events[2][1]
    assert all(at >= decommissioned_at for _, at in events[3:]), events
    assert names[3:] in ([], ["returned"]), events
