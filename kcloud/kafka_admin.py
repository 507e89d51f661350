"""The project's Kafka topics, created where they are missing: by the stream workers and the gateway when
they start, and by `kcloud infra up`. Each topic's partitions and retention come from `kcloud.topics` and
the settings. Imports kcloud and kafka-python only.
"""

from __future__ import annotations

from kcloud.settings import Settings
from kcloud.topics import ALL_TOPICS

__all__ = ["ensure_topics"]


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
