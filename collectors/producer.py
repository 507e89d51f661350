"""The one Kafka producer of the collectors: node snapshots to `kcloud.telemetry.v1`, keyed by node_id.

Tuned for throughput (linger, batching) with the producer's idempotence and `acks=all`; `flush()`
waits until the broker has acknowledged everything sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer

from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY

__all__ = ["SnapshotProducer"]


class SnapshotProducer:
    """Send snapshots (or raw bytes, for replays and tests) to the telemetry topic."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.topic = settings.topic(TELEMETRY)
        config: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap.split(","),
            "acks": "all",
            "linger_ms": 20,
            "batch_size": 256 * 1024,
            "max_request_size": 8 * 1024 * 1024,
            "client_id": "kcloud-collector",
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)

    def send(self, snapshot: NodeSnapshot) -> None:
        self._producer.send(self.topic, key=snapshot.node.node_id.encode(), value=snapshot.to_json_bytes())

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        self._producer.send(self.topic, key=key, value=value)

    def send_all(self, snapshots: Iterable[NodeSnapshot]) -> int:
        n = 0
        for snap in snapshots:
            self.send(snap)
            n += 1
        return n

    def flush(self, timeout: float = 60.0) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.close()
