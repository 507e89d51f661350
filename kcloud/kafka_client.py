"""The project's Kafka client settings, in one place: the producer configuration every producer uses
(the collectors', the gateway's, the ledger checkpoints' and the operator commands'), and the topics,
created where they are missing (by the stream workers and the gateway when they start, and by
`kcloud infra up`; partitions and retention from `kcloud.topics` and the settings). Imports kcloud and
kafka-python only.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.codec import has_lz4, has_zstd

from kcloud.settings import Settings
from kcloud.topics import ALL_TOPICS

__all__ = ["compression_type", "ensure_topics", "producer_config"]

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, *, timeout_ms: int = 10000) -> list[str]:
    """Create the project topics that do not exist yet (with their retention); returns the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=timeout_ms, client_id="kcloud-topics"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic(spec),
                settings.kafka_partitions,
                1,
                topic_configs={"retention.ms": str(spec.retention_ms)},
            )
            for spec in ALL_TOPICS
            if settings.topic(spec) not in existing
        ]
        if wanted:
            admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()


def compression_type(preferred: str = "auto") -> str:
    """The codec of the producer: `preferred` (`lz4`, `zstd`, `gzip`) when kafka-python can use it here;
    for `auto`, lz4, else zstd, else gzip with a warning. Raises ValueError for a codec whose Python package
    is missing, naming the package."""
    available = {"lz4": has_lz4(), "zstd": has_zstd(), "gzip": True}
    if preferred != "auto":
        if preferred not in available:
            raise ValueError(f"unknown compression {preferred!r}; use auto, lz4, zstd or gzip")
        if not available[preferred]:
            package = {"lz4": "lz4", "zstd": "zstandard"}[preferred]
            raise ValueError(f"compression {preferred} needs the {package} package (pip install {package})")
        return preferred
    if available["lz4"]:
        return "lz4"
    if available["zstd"]:
        return "zstd"
    log.warning("neither lz4 nor zstandard is installed; compressing with gzip (pip install lz4)")
    return "gzip"


def producer_config(
    settings: Settings,
    *,
    client_id: str,
    delivery_timeout_s: float = 30.0,
    connect_timeout_s: float = 5.0,
    compression: str = "auto",
    **overrides: Any,
) -> dict[str, Any]:
    """kafka-python producer settings: every record acknowledged by all in-sync replicas, idempotent,
    compressed, batched for `linger_ms` (20 unless overridden); a send is retried for `delivery_timeout_s`,
    a connection attempt waits `connect_timeout_s`. `overrides` win."""
    delivery_ms = max(int(delivery_timeout_s * 1000), 1000)
    linger_ms = int(overrides.get("linger_ms", 20))
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": compression_type(compression),
        "linger_ms": linger_ms,
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
        "client_id": client_id,
        "delivery_timeout_ms": delivery_ms,
        "request_timeout_ms": min(30000, delivery_ms - linger_ms),
        "max_block_ms": max(int(connect_timeout_s * 1000), 1000),
        "bootstrap_timeout_ms": max(int(connect_timeout_s * 1000), 500),
        "reconnect_backoff_max_ms": 2000,
    }
    config.update(overrides)
    return config
