"""The fleet the dashboard tests query: a simulated fleet of 24 nodes (GPUs and domestic NPUs at several
sites) written by the ingest's `SampleSink` every 10 s for 90 minutes across a UTC midnight, two nodes
falling silent for the last 15 minutes, then the lifecycle sweep and the hourly and daily rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collectors.simulator import SimulatedFleet
from kcloud.db.connect import connect
from kcloud.db.rollups import refresh_rollups
from kcloud.settings import Settings
from streams.sink import SampleSink

START = datetime(2026, 3, 14, 23, 15, tzinfo=UTC)
END = START + timedelta(minutes=90)
SILENT_NODES = (0, 1)
SILENT_FROM = END - timedelta(minutes=15)


@dataclass(frozen=True)
class FilledDb:
    """A filled database: its URL, whether it runs TimescaleDB, and the event-time range of its data."""

    url: str
    timescaledb: bool
    start: datetime = START
    end: datetime = END


def fill(settings: Settings) -> None:
    """Run the simulated fleet through the ingest sink and refresh the rollups."""
    fleet = SimulatedFleet(nodes=24, seed=7, node_prefix="dash")
    sink = SampleSink(settings)
    try:
        at, seq = START, 0
        while at < END:
            snaps = fleet.tick(at, seq)
            if at >= SILENT_FROM:
                silent = {fleet.node_id(i) for i in SILENT_NODES}
                snaps = [s for s in snaps if s.node.node_id not in silent]
            sink.write(snaps)
            at, seq = at + timedelta(seconds=10), seq + 1
        sink.sweep()
    finally:
        sink.close()
    with connect(settings.effective_database_url, autocommit=True) as conn:
        refresh_rollups(conn, START - timedelta(days=1), END + timedelta(days=1))
