"""Ingest: decode a batch of raw telemetry messages, dead-letter what is invalid, store the rest.

The decoding is pure (`decode_batch`): a message that is not a valid snapshot, is dated outside the
accepted window (`kcloud.timewindow`) or whose Kafka key is not its node's `node_id` (it would break the
one-node-one-partition order every rollup and silence check relies on: reason `key_mismatch`) is
dead-lettered. `IngestProcessor.handle` adds the I/O: the database write and the dead-letter publishes,
all finished before the batch's offsets may be committed.

A failed write is classified (`is_transient`). A transient failure (connection lost, server shutting down,
serialization failure or deadlock, out of resources) is retried with backoff until it succeeds, so a
stopped database pauses consumption instead of losing data. A failure that would recur every time (a data
error, a constraint, an exhausted sequence) is not retried: the batch is halved until the snapshots at
fault are found, those are dead-lettered with reason `database_rejected` (the SQLSTATE and the server's
message) and their original bytes, and the rest is stored. Snapshots the sink refuses (what belongs to
another vendor, `streams.sink`) are dead-lettered the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import psycopg

from kcloud.records import AlertMessage, DeadLetter, DeploymentEvent, InvalidSnapshot, NodeSnapshot, parse_snapshot
from kcloud.timewindow import TimeWindow
from streams.progress import PartitionProgress

__all__ = [
    "DB_REJECTED",
    "KEY_MISMATCH",
    "IngestCounters",
    "IngestProcessor",
    "RawMessage",
    "WriteOutcome",
    "decode_batch",
    "decode_messages",
    "is_transient",
]

log = logging.getLogger("kcloud.streams.ingest")

#: dead-letter reason of a record whose Kafka key is not the node_id of its body
KEY_MISMATCH = "key_mismatch"
#: dead-letter reason of a snapshot the database refuses the same way every time
DB_REJECTED = "database_rejected"

#: SQLSTATE classes and codes of failures that pass: connection exception, insufficient resources, the
#: server shutting down or crashing, serialization failure, deadlock, lock not available, statement
#: timeout, system errors (disk, I/O)
_TRANSIENT_CLASSES = ("08", "53", "58")
_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "57014", "40001", "40P01", "55P03", "55006"})


def is_transient(exc: BaseException) -> bool:
    """Whether a failed database write may succeed when tried again.

    A data error (SQLSTATE class 22, an exhausted sequence 2200H included), an integrity violation
    (class 23) or any other error the server raises for the statement itself recurs on every try. What is
    not the server judging the data (a lost connection, a server shutting down, a serialization failure,
    a deadlock, an error of the client library without a SQLSTATE other than a data error) passes.

    >>> is_transient(psycopg.OperationalError("connection lost"))
    True
    >>> is_transient(psycopg.errors.SequenceGeneratorLimitExceeded())
    False
    """
    if not isinstance(exc, psycopg.Error):
        return True  # not the database judging the data: e.g. a timeout of the thread; keep trying
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return False  # also the client's own data errors (a value its binary dumper cannot encode)
    state = exc.sqlstate
    if state is None:
        return True  # no answer from the server: the connection broke, or never was
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES


@dataclass(frozen=True)
class RawMessage:
    """One Kafka record as the ingest sees it."""

    value: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass
class IngestCounters:
    """Running totals, exposed on the worker's metrics and in its logs."""

    messages: int = 0
    snapshots_valid: int = 0
    samples_in: int = 0
    samples_stored: int = 0
    deadlettered: int = 0
    late_samples: int = 0
    deployment_events: int = 0
    alerts: int = 0
    db_retries: int = 0
    #: writes the database refused deterministically (each one halves its batch)
    db_rejected_writes: int = 0
    #: samples stored without their throughput: its new workload was over the vendor's cap
    throughput_refused: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def dead_letter(msg: RawMessage, reason: str, detail: str) -> DeadLetter:
    """The dead letter of `msg`: its original bytes, where it came from, and why."""
    return DeadLetter.from_bytes(
        msg.value,
        reason=reason,
        detail=detail,
        stage="ingest",
        source_topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
    )


def _check_key(msg: RawMessage, snap: NodeSnapshot) -> None:
    node = snap.node.node_id
    if msg.key != node.encode():
        shown = "no key" if msg.key is None else f"key {msg.key[:140].decode('utf-8', 'replace')!r}"
        raise InvalidSnapshot(
            KEY_MISMATCH,
            f"record has {shown} but node.node_id {node!r}: a node's snapshots must be keyed by its node_id "
            "(one node, one partition, in order)",
        )


def decode_batch(
    messages: Sequence[RawMessage], *, now: datetime, window: TimeWindow
) -> tuple[list[NodeSnapshot], list[DeadLetter]]:
    """Split raw messages into valid snapshots and dead letters (each with reason and original bytes)."""
    good, bad = decode_messages(messages, now=now, window=window)
    return [snap for snap, _ in good], bad


def decode_messages(
    messages: Sequence[RawMessage], *, now: datetime, window: TimeWindow
) -> tuple[list[tuple[NodeSnapshot, RawMessage]], list[DeadLetter]]:
    """As `decode_batch`, keeping the record each valid snapshot came from."""
    good: list[tuple[NodeSnapshot, RawMessage]] = []
    bad: list[DeadLetter] = []
    for msg in messages:
        try:
            snap = parse_snapshot(msg.value)
            window.check(snap.collected_at, now)
            _check_key(msg, snap)
        except InvalidSnapshot as exc:
            bad.append(dead_letter(msg, exc.reason, exc.detail))
            continue
        good.append((snap, msg))
    return good, bad


class WriteOutcome(Protocol):
    """What the sink reports for one batch (streams.sink.WriteResult)."""

    @property
    def stored(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def events(self) -> list[DeploymentEvent]: ...
    @property
    def alerts(self) -> list[AlertMessage]: ...
    @property
    def refused(self) -> list[tuple[int, str, str]]: ...
    @property
    def throughput_refused(self) -> int: ...


WriteFn = Callable[[list[NodeSnapshot], dict[str, int]], Awaitable[WriteOutcome]]
PublishFn = Callable[[list[DeadLetter]], Awaitable[None]]
PublishEventsFn = Callable[[list[DeploymentEvent]], Awaitable[None]]
PublishAlertsFn = Callable[[list[AlertMessage]], Awaitable[None]]


@dataclass
class _Written:
    """What the writes of one batch (halved or not) added up to."""

    stored: int = 0
    late: int = 0
    throughput_refused: int = 0
    events: list[DeploymentEvent] = field(default_factory=list)
    alerts: list[AlertMessage] = field(default_factory=list)
    kept: list[tuple[NodeSnapshot, RawMessage]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


class IngestProcessor:
    """Handles one batch at a time: decode, write (retrying what passes, halving what does not), dead-letter."""

    def __init__(
        self,
        write: WriteFn,
        publish_deadletters: PublishFn,
        publish_events: PublishEventsFn,
        publish_alerts: PublishAlertsFn,
        *,
        window: TimeWindow,
        progress: PartitionProgress,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._write = write
        self._publish = publish_deadletters
        self._publish_events = publish_events
        self._publish_alerts = publish_alerts
        self.progress = progress
        self._window = window
        self._max_backoff = max_backoff_s
        self.counters = IngestCounters()

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        # pure CPU work off the event loop, so the consumer's heartbeats and keepalives are never starved
        decoded, bad = await asyncio.to_thread(decode_messages, messages, now=datetime.now(UTC), window=self._window)
        self.counters.messages += len(messages)
        done = _Written(letters=bad)
        if decoded:
            await self._write_all(decoded, done)
        if done.letters:
            await self._publish(done.letters)
            self.counters.deadlettered += len(done.letters)
            for dl in done.letters:
                self.counters.reasons[dl.reason] = self.counters.reasons.get(dl.reason, 0) + 1
                log.warning(
                    "dead-lettered %s[%s]@%s: %s: %s",
                    dl.source_topic,
                    dl.partition,
                    dl.offset,
                    dl.reason,
                    dl.detail[:300],
                )
        if done.kept:
            self.progress.update_many((msg.partition, snap.node.node_id, snap.collected_at) for snap, msg in done.kept)
            self.counters.snapshots_valid += len(done.kept)
            self.counters.samples_in += sum(len(s.devices) for s, _ in done.kept)
            self.counters.samples_stored += done.stored
            self.counters.late_samples += done.late
            self.counters.throughput_refused += done.throughput_refused
        if done.events:
            await self._publish_events(done.events)
            self.counters.deployment_events += len(done.events)
        if done.alerts:
            await self._publish_alerts(done.alerts)
            self.counters.alerts += len(done.alerts)

    async def _write_all(self, batch: list[tuple[NodeSnapshot, RawMessage]], done: _Written) -> None:
        """Write `batch`; when the database refuses it deterministically, its halves in order (a node's
        snapshots stay in order), down to the single snapshots at fault, which are dead-lettered."""
        try:
            outcome = await self._write_with_retry(batch)
        except psycopg.Error as exc:  # the same every time: find the snapshots at fault
            self.counters.db_rejected_writes += 1
            if len(batch) == 1:
                (snap, msg) = batch[0]
                state = exc.sqlstate or "client"
                detail = f"the database refused this snapshot of node {snap.node.node_id!r} ({state}): "
                done.letters.append(dead_letter(msg, DB_REJECTED, detail + str(exc).strip()[:500]))
                return
            half = len(batch) // 2
            await self._write_all(batch[:half], done)
            await self._write_all(batch[half:], done)
            return
        refused = {i: (reason, detail) for i, reason, detail in outcome.refused}
        for i, item in enumerate(batch):
            if i in refused:
                done.letters.append(dead_letter(item[1], *refused[i]))
            else:
                done.kept.append(item)
        done.stored += outcome.stored
        done.late += outcome.late
        done.throughput_refused += outcome.throughput_refused
        done.events.extend(outcome.events)
        done.alerts.extend(outcome.alerts)

    async def _write_with_retry(self, batch: list[tuple[NodeSnapshot, RawMessage]]) -> WriteOutcome:
        """Write, retrying with backoff while the failure is transient; a deterministic one is raised."""
        snapshots = [snap for snap, _ in batch]
        partitions = {snap.node.node_id: msg.partition for snap, msg in batch}
        delay = min(0.5, self._max_backoff)
        while True:
            try:
                return await self._write(snapshots, partitions)
            except Exception as exc:
                if not is_transient(exc):
                    log.warning(
                        "database refused a write of %d snapshots (%s: %s); %s",
                        len(snapshots),
                        type(exc).__name__,
                        str(exc).strip()[:200],
                        "dead-lettering it"
                        if len(snapshots) == 1
                        else "halving the batch to find the snapshot at fault",
                    )
                    raise
                self.counters.db_retries += 1  # the database is away: wait, never drop
                log.warning(
                    "database write of %d snapshots failed (%s: %s); retrying in %.1fs",
                    len(snapshots),
                    type(exc).__name__,
                    str(exc).strip()[:200],
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
