"""Device alerts through the real sink and database: a hot card, a failed card and rising uncorrected ECC
each open one row in `alerts` at the sample that showed it and resolve when the card recovers; a replay
of the same snapshots changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collectors.simulator import SimulatedFleet
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from streams.refresh import REFRESH_LOCK, RefreshBusyError, RollupRefresher
from streams.sink import SampleSink

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def _ticks() -> list[NodeSnapshot]:
    fleet = SimulatedFleet(nodes=1, seed=9, node_prefix="alrt")
    out = []
    for tick in range(12):
        snap = fleet.snapshot(0, T0 + timedelta(seconds=10 * tick), seq=tick)
        devs = list(snap.devices)
        devs[0] = devs[0].model_copy(update={"temp_c": 96.0 if 2 <= tick < 5 else 60.0})
        devs[1] = devs[1].model_copy(update={"health": "failed" if 4 <= tick < 8 else "ok"})
        devs[2] = devs[2].model_copy(update={"ecc_uncorrected": 0 if tick < 6 else 2})
        out.append(snap.model_copy(update={"devices": devs}))
    return out


def _alerts(url: str) -> list[tuple[str, datetime, datetime | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT rule, started_at, resolved_at FROM alerts ORDER BY rule").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_hot_failed_and_ecc_rising_cards_open_and_resolve_alerts_once(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"ecc_alert_quiet_s": 30.0})
    migrate(settings.effective_database_url, settings)
    snaps = _ticks()
    sink = SampleSink(settings)
    try:
        for snap in snaps:
            sink.write([snap])
        first = _alerts(settings.effective_database_url)
        replayed = sink.write(snaps)  # the same input again, in one batch
    finally:
        sink.close()
    at = [T0 + timedelta(seconds=10 * t) for t in range(12)]
    assert first == [
        ("ecc_rising", at[6], at[9]),
        ("health_failed", at[4], at[8]),
        ("temp_high", at[2], at[5]),
    ]
    assert replayed.stored == 0 and replayed.alerts == []
    assert _alerts(settings.effective_database_url) == first


def test_the_hourly_refresh_covers_what_the_ingest_wrote_one_refresher_at_a_time(test_settings: Settings) -> None:
    migrate(test_settings.effective_database_url, test_settings)
    snaps = _ticks()
    sink, refresher, other = SampleSink(test_settings), RollupRefresher(test_settings), RollupRefresher(test_settings)
    try:
        for snap in snaps:
            sink.write([snap])
        sink.close_minutes()  # the node's newest minute stays open until it goes quiet: close it now
        window = sink.take_dirty()
        assert window is not None and sink.take_dirty() is None
        report = refresher.refresh(window)
        assert report is not None
        with psycopg.connect(test_settings.effective_database_url) as conn:
            hourly = conn.execute("SELECT sum(samples) FROM device_rollup_1h").fetchone()
            minutes = conn.execute("SELECT sum(samples) FROM device_rollup_1m").fetchone()
            assert hourly == minutes and hourly is not None and hourly[0] == sum(len(s.devices) for s in snaps)
            conn.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK,))  # another worker refreshing
            try:
                with pytest.raises(RefreshBusyError):
                    other.refresh(window)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK,))
    finally:
        for s in (sink, refresher, other):
            s.close()
