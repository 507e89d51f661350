"""The one Kafka producer of the collectors: node snapshots to `kcloud.telemetry.v1`, keyed by node_id,
that never blocks the caller and loses nothing while Kafka is briefly away.

`send()` only queues the snapshot. A delivery thread (`collectors.delivery`) owns the kafka-python
producer (idempotent, `acks=all`, lz4 or zstd compression, linger and batching) and sends each snapshot
straight to Kafka while the broker answers. When it does not (no connection, or a send still failing
after kafka-python's own retries for `delivery_timeout_s`), snapshots go to the spool
(`collectors.spool`), in order behind every older one; on reconnect the spool is replayed in order
before anything newer, and a snapshot leaves the spool only after the broker acknowledged it, so a
node's `seq` order holds on the topic. The idempotent producer removes duplicates of its own retries;
a snapshot the broker stored but whose acknowledgement was lost to the outage is the one case that can
arrive twice (the ingest stage is idempotent anyway).

Example:
    >>> producer = SnapshotProducer(settings, spool=Spool(Path(".kcloud/spool/sim"), 64 * 2**20))
    >>> producer.send(snapshot)  # returns at once
    >>> producer.flush(timeout=10)  # True once everything sent so far is acknowledged
    True
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer

from collectors.delivery import MAX_BACKLOG_BYTES, Delivery
from collectors.metrics import AgentMetrics
from collectors.spool import MemorySpool, SpoolLike
from kcloud.kafka_client import compression_type
from kcloud.kafka_client import producer_config as kafka_producer_config
from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY

__all__ = ["SnapshotProducer", "compression_type", "producer_config"]

log = logging.getLogger("kcloud.collectors.producer")


def producer_config(
    settings: Settings,
    delivery_timeout_s: float = 30.0,
    connect_timeout_s: float = 5.0,
    compression: str = "auto",
    **overrides: Any,
) -> dict[str, Any]:
    """kafka-python settings of the collectors' producer (the project's one producer configuration,
    `kcloud.kafka_client.producer_config`, as a collector); `overrides` win."""
    return kafka_producer_config(
        settings,
        client_id="kcloud-collector",
        delivery_timeout_s=delivery_timeout_s,
        connect_timeout_s=connect_timeout_s,
        compression=compression,
        **overrides,
    )


class SnapshotProducer:
    """Send snapshots (or raw bytes, for replays and tests) to the telemetry topic without blocking.

    `spool` keeps what cannot be delivered yet (default: a 64 MiB `MemorySpool`, lost at exit; the agent
    passes a disk `Spool`). `delivery_timeout_s` is how long kafka-python retries a send before it is
    spooled; `connect_timeout_s` bounds one connection attempt; `compression` is `auto`, `lz4`, `zstd`
    or `gzip` (ValueError when its package is missing); past `max_backlog_bytes` of records waiting for
    the delivery thread, new ones are spooled (Kafka slower than the source). `overrides` are kafka-python
    producer settings applied last.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        spool: SpoolLike | None = None,
        metrics: AgentMetrics | None = None,
        delivery_timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        compression: str = "auto",
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        **overrides: Any,
    ) -> None:
        self.topic = settings.topic(TELEMETRY)
        self.bootstrap = settings.kafka_bootstrap
        config = producer_config(settings, delivery_timeout_s, connect_timeout_s, compression, **overrides)
        self.compression: str = config["compression_type"]
        self.spool: SpoolLike = spool if spool is not None else MemorySpool()
        if metrics is not None:
            spool_ = self.spool
            metrics.watch_spool(
                lambda: len(spool_),
                lambda: spool_.size_bytes,
                lambda: spool_.dropped,
                memory=lambda: spool_.memory_bytes,
                errors=lambda: spool_.write_errors,
            )
        self._delivery = Delivery(
            self.topic,
            self.bootstrap,
            make_producer=lambda: KafkaProducer(**config),
            spool=self.spool,
            metrics=metrics,
            delivery_timeout_s=delivery_timeout_s,
            max_backlog_bytes=max_backlog_bytes,
        )

    def send(self, snapshot: NodeSnapshot) -> None:
        """Queue one snapshot (key = node_id); returns at once."""
        self._delivery.submit(snapshot.node.node_id.encode(), snapshot.to_json_bytes())

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Queue raw bytes for the telemetry topic (replays, tests); returns at once."""
        self._delivery.submit(key, value)

    def send_all(self, snapshots: Iterable[NodeSnapshot]) -> int:
        """Queue every snapshot in order; returns how many."""
        return self.send_records([(s.node.node_id.encode(), s.to_json_bytes()) for s in snapshots])

    def send_records(self, records: Sequence[tuple[bytes | None, bytes]]) -> int:
        """Queue (key, value) records in order, as one hand-over to the delivery thread (the agent's path:
        one tick of wire snapshots); returns how many."""
        if records:
            self._delivery.submit_many(records)
        return len(records)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything sent so far is acknowledged by Kafka (the spool's replay included).

        Returns False, with a warning, when `timeout` seconds pass first; nothing is lost by that: the
        rest stays queued or spooled.
        """
        done = self._delivery.wait_idle(timeout)
        if not done:
            d = self._delivery
            log.warning(
                "kafka %s: %d snapshot(s) not yet acknowledged after %.0f s (%d spooled): %s",
                self.bootstrap,
                d.pending(),
                timeout,
                len(self.spool),
                d.problem or ("connecting" if d.connecting else "still sending"),
            )
        return done

    def pending(self) -> int:
        """Snapshots accepted but not yet acknowledged (queued, in flight or spooled)."""
        return self._delivery.pending()

    @property
    def connected(self) -> bool:
        """True while snapshots go straight to Kafka (nothing spooled or failing)."""
        return self._delivery.direct

    def close(self, timeout: float = 10.0) -> bool:
        """Flush for up to `timeout` seconds, then stop; returns True when everything was acknowledged.
        What was not stays in the spool (a disk spool replays it at the next start)."""
        delivered = self.flush(timeout)
        self._delivery.stop()
        left = len(self.spool)
        if left:
            log.warning("kafka %s: %d snapshot(s) left in the spool for the next start", self.bootstrap, left)
        self.spool.close()
        return delivered
