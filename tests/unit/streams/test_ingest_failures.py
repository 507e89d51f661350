"""How the ingest meets a failed write: transient failures are retried, a deterministic one halves the batch
down to the snapshot at fault, which is dead-lettered with its bytes while the rest is stored."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collectors.simulator import SimulatedFleet
from kcloud.records import AlertMessage, DeadLetter, DeploymentEvent, NodeSnapshot
from kcloud.timewindow import TimeWindow
from streams.ingest import IngestProcessor, RawMessage, is_transient
from streams.progress import PartitionProgress


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.SerializationFailure(), True),
        (psycopg.errors.DeadlockDetected(), True),
        (psycopg.errors.TooManyConnections(), True),
        (psycopg.errors.SequenceGeneratorLimitExceeded(), False),
        (psycopg.errors.NumericValueOutOfRange(), False),
        (psycopg.errors.CheckViolation(), False),
        (psycopg.errors.ForeignKeyViolation(), False),
        (psycopg.DataError("int too large to convert to int2"), False),
    ],
)
def test_database_failures_are_told_apart(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


@dataclass(frozen=True)
class _Outcome:
    stored: int
    late: int = 0
    events: list[DeploymentEvent] = field(default_factory=list)
    alerts: list[AlertMessage] = field(default_factory=list)
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    throughput_refused: int = 0


def test_a_deterministic_failure_dead_letters_only_the_snapshot_at_fault() -> None:
    now = datetime.now(UTC)
    fleet = SimulatedFleet(nodes=7, seed=3)
    snaps = [fleet.snapshot(n, now - timedelta(seconds=30), seq=1) for n in range(7)]
    poison = snaps[4].node.node_id
    stored: list[str] = []
    calls = {"n": 0, "flaky": 1}
    letters: list[DeadLetter] = []

    async def write(batch: list[NodeSnapshot], partitions: dict[str, int]) -> _Outcome:
        calls["n"] += 1
        if calls["flaky"]:  # a lost connection first: retried, not halved
            calls["flaky"] = 0
            raise psycopg.OperationalError("connection lost")
        if any(s.node.node_id == poison for s in batch):
            raise psycopg.errors.CheckViolation("new row violates check constraint")
        stored.extend(s.node.node_id for s in batch)
        return _Outcome(stored=sum(len(s.devices) for s in batch))

    async def publish(dls: list[DeadLetter]) -> None:
        letters.extend(dls)

    async def nothing(_: object) -> None:
        return None

    proc = IngestProcessor(
        write,
        publish,
        nothing,
        nothing,
        window=TimeWindow(timedelta(seconds=300), timedelta(days=7)),
        progress=PartitionProgress(idle_after_s=20),
        max_backoff_s=0.01,
    )
    msgs = [RawMessage(s.to_json_bytes(), s.node.node_id.encode(), "t", 0, i) for i, s in enumerate(snaps)]
    asyncio.run(proc.handle(msgs))
    assert stored == [s.node.node_id for s in snaps if s.node.node_id != poison]  # in order
    assert [(dl.reason, dl.offset) for dl in letters] == [("database_rejected", 4)]
    assert letters[0].original() == msgs[4].value and "23514" in letters[0].detail
    c = proc.counters
    assert (c.db_retries, c.snapshots_valid, c.deadlettered) == (1, 6, 1)
    assert c.db_rejected_writes == 4  # 7, then its second half of 4, then 2, then the 1 at fault
