"""A card that stops reporting while its node keeps reporting goes offline at its own last sample plus the
threshold, and returns when it reports again; the same on the database as in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from collectors.simulator import SimulatedFleet
from kcloud.db.migrate import migrate
from kcloud.settings import Settings
from streams.sink import SampleSink

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def test_a_card_pulled_from_a_live_node_goes_offline_and_returns(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"offline_after_intervals": 3})  # 30 s
    migrate(settings.effective_database_url, settings)
    fleet = SimulatedFleet(nodes=1, seed=5, node_prefix="pull")
    sink = SampleSink(settings)
    pulled = None
    try:
        for tick in range(20):
            snap = fleet.snapshot(0, T0 + timedelta(seconds=10 * tick), seq=tick)
            pulled = pulled or snap.devices[1].device_uuid
            if 5 <= tick < 12:  # the card is gone from ticks 5 to 11; the node keeps reporting
                snap = snap.model_copy(update={"devices": [d for d in snap.devices if d.device_uuid != pulled]})
            sink.write([snap])
    finally:
        sink.close()
    with psycopg.connect(settings.effective_database_url) as conn:
        events = conn.execute(
            "SELECT event, at FROM deployment_events WHERE device_uuid = %s AND event IN ('offline', 'returned') "
            "ORDER BY seq",
            (pulled,),
        ).fetchall()
        others = conn.execute(
            "SELECT count(*) FROM deployment_events WHERE device_uuid <> %s AND event IN ('offline', 'returned')",
            (pulled,),
        ).fetchone()
    last = T0 + timedelta(seconds=40)
    assert events == [("offline", last + timedelta(seconds=30)), ("returned", T0 + timedelta(seconds=120))]
    assert others == (0,)
