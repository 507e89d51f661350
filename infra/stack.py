"""The whole local stack as one unit: `up` brings PostgreSQL and Kafka up (idempotently), `down` stops
what `up` started, `status` reports both. Used by `kcloud infra` and by the integration tests."""

from __future__ import annotations

from dataclasses import dataclass

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.settings import Settings

__all__ = ["StackStatus", "down", "status", "up"]


@dataclass(frozen=True)
class StackStatus:
    kafka_healthy: bool
    kafka_detail: str
    postgres_healthy: bool
    postgres_detail: str

    @property
    def healthy(self) -> bool:
        return self.kafka_healthy and self.postgres_healthy

    def lines(self) -> list[str]:
        mark = {True: "ok  ", False: "FAIL"}
        return [
            f"{mark[self.postgres_healthy]} postgres  {self.postgres_detail}",
            f"{mark[self.kafka_healthy]} kafka     {self.kafka_detail}",
        ]


def up(settings: Settings) -> list[str]:
    """Start whatever is not running; returns one line per service. Raises InfraError on failure."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return [PostgresService(settings).up(), KafkaService(settings).up()]


def down(settings: Settings) -> list[str]:
    return [KafkaService(settings).down(), PostgresService(settings).down()]


def status(settings: Settings) -> StackStatus:
    k = KafkaService(settings).status()
    p = PostgresService(settings).status()
    return StackStatus(k.healthy, k.detail, p.healthy, p.detail)
