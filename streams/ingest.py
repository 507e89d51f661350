"""Ingest: decode a batch of raw telemetry messages, dead-letter what is invalid, store the rest.

The decoding is pure (`decode_batch`); `IngestProcessor.handle` adds the I/O: the database write
(retried with backoff until it succeeds, so a stopped database pauses consumption instead of losing
data) and the dead-letter publishes, all finished before the batch's offsets may be committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from kcloud.records import AlertMessage, DeadLetter, DeploymentEvent, InvalidSnapshot, NodeSnapshot, parse_snapshot
from kcloud.timewindow import TimeWindow
from streams.progress import PartitionProgress

__all__ = ["IngestCounters", "IngestProcessor", "RawMessage", "WriteOutcome", "decode_batch", "decode_messages"]

log = logging.getLogger("kcloud.streams.ingest")


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
    reasons: dict[str, int] = field(default_factory=dict)


def decode_batch(
    messages: Sequence[RawMessage], *, now: datetime, window: TimeWindow
) -> tuple[list[NodeSnapshot], list[DeadLetter]]:
    """Split raw messages into valid snapshots and dead letters (each with reason and original bytes)."""
    good, bad = decode_messages(messages, now=now, window=window)
    return [snap for snap, _ in good], bad


def decode_messages(
    messages: Sequence[RawMessage], *, now: datetime, window: TimeWindow
) -> tuple[list[tuple[NodeSnapshot, int]], list[DeadLetter]]:
    """As `decode_batch`, keeping the partition each valid snapshot came from."""
    good: list[tuple[NodeSnapshot, int]] = []
    bad: list[DeadLetter] = []
    for msg in messages:
        try:
            snap = parse_snapshot(msg.value)
            window.check(snap.collected_at, now)
        except InvalidSnapshot as exc:
            bad.append(
                DeadLetter.from_bytes(
                    msg.value,
                    reason=exc.reason,
                    detail=exc.detail,
                    stage="ingest",
                    source_topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=msg.key,
                )
            )
            continue
        good.append((snap, msg.partition))
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


WriteFn = Callable[[list[NodeSnapshot], dict[str, int]], Awaitable[WriteOutcome]]
PublishFn = Callable[[list[DeadLetter]], Awaitable[None]]
PublishEventsFn = Callable[[list[DeploymentEvent]], Awaitable[None]]
PublishAlertsFn = Callable[[list[AlertMessage]], Awaitable[None]]


class IngestProcessor:
    """Handles one batch at a time: decode, write (retrying), dead-letter."""

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
        good = [snap for snap, _ in decoded]
        self.counters.messages += len(messages)
        if bad:
            await self._publish(bad)
            self.counters.deadlettered += len(bad)
            for dl in bad:
                self.counters.reasons[dl.reason] = self.counters.reasons.get(dl.reason, 0) + 1
                log.warning(
                    "dead-lettered %s[%s]@%s: %s: %s",
                    dl.source_topic,
                    dl.partition,
                    dl.offset,
                    dl.reason,
                    dl.detail[:300],
                )
        if good:
            partitions = {snap.node.node_id: part for snap, part in decoded}
            outcome = await self._write_with_retry(good, partitions)
            for snap, part in decoded:
                self.progress.update(part, snap.collected_at)
            self.counters.snapshots_valid += len(good)
            self.counters.samples_in += sum(len(s.devices) for s in good)
            self.counters.samples_stored += outcome.stored
            self.counters.late_samples += outcome.late
            if outcome.events:
                await self._publish_events(outcome.events)
                self.counters.deployment_events += len(outcome.events)
            if outcome.alerts:
                await self._publish_alerts(outcome.alerts)
                self.counters.alerts += len(outcome.alerts)

    async def _write_with_retry(self, snapshots: list[NodeSnapshot], partitions: dict[str, int]) -> WriteOutcome:
        delay = 0.5
        while True:
            try:
                return await self._write(snapshots, partitions)
            except Exception as exc:  # the database is away: wait, never drop
                self.counters.db_retries += 1
                log.warning(
                    "database write of %d snapshots failed (%s: %s); retrying in %.1fs",
                    len(snapshots),
                    type(exc).__name__,
                    str(exc).strip()[:200],
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
