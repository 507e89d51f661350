"""A database filled by a seeded simulated fleet, through the real ingest sink.

Twelve nodes of `SimulatedFleet(80, seed=12)` for three hours at 10 s: four Sapeon X330 nodes and four
H100 nodes at nhn-cloud-gwangju, four Rebellions ATOM nodes at kt-cloud-cheonan. In that window node 2
is offline for ticks 394-763, device (3, 0) fails at tick 1051 and (5, 3) at tick 983, and a device of
node 74 sits in node 78 until tick 374 (it is not written afterwards, so it goes silent). The snapshots
written are kept so that the tests compute the expected figures from them, not from the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from collectors.simulator import SimulatedFleet
from infra.postgres import PostgresService
from kcloud.db.migrate import migrate
from kcloud.db.rollups import refresh_rollups
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from streams.sink import SampleSink

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
TICKS = 1080
NODES = (*range(8), *range(76, 80))
END = T0 + timedelta(seconds=10 * TICKS)


@dataclass(frozen=True)
class FleetDb:
    """The filled database's settings and every snapshot written to it."""

    settings: Settings
    snapshots: list[NodeSnapshot]


def _with_db(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def fill(base_settings: Settings, postgres_up: PostgresService) -> Iterator[FleetDb]:
    name = "r_" + uuid.uuid4().hex[:12]
    admin = _with_db(postgres_up.url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    # the storage mode of the run (KCLOUD_TIMESCALE): the reports read the same figures from either
    settings = base_settings.model_copy(update={"database_url": _with_db(postgres_up.url, name)})
    try:
        migrate(settings.effective_database_url, settings, now=T0)
        fleet = SimulatedFleet(nodes=80, seed=12)
        wanted = {fleet.node_id(n) for n in NODES}
        sink = SampleSink(settings)
        written: list[NodeSnapshot] = []
        batch: list[NodeSnapshot] = []
        for k in range(TICKS):
            batch.extend(s for s in fleet.tick(T0 + timedelta(seconds=10 * k), k) if s.node.node_id in wanted)
            if len(batch) >= 360 or k == TICKS - 1:
                sink.write(batch)
                written.extend(batch)
                batch = []
        sink.sweep()
        sink.close()
        with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
            refresh_rollups(conn, T0 - timedelta(days=1), END + timedelta(days=1))
        yield FleetDb(settings, written)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
