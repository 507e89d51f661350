"""Kafka topic names and their shapes: the one place a topic name is spelled.

Topics are created explicitly (never auto-created by a first produce) with the partition count from
settings; every topic is keyed by `node_id` so that one node's snapshots stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALERTS", "ALL_TOPICS", "DEADLETTER", "DEPLOYMENTS", "LEDGER_CHECKPOINTS", "TELEMETRY", "TopicSpec"]


@dataclass(frozen=True)
class TopicSpec:
    """A project topic: name, what it carries, and its retention."""

    name: str
    purpose: str
    retention_ms: int


TELEMETRY = TopicSpec("kcloud.telemetry.v1", "node snapshots from collectors and the gateway", 7 * 86_400_000)
DEADLETTER = TopicSpec("kcloud.deadletter.v1", "rejected input with its reason and original bytes", 30 * 86_400_000)
DEPLOYMENTS = TopicSpec("kcloud.deployments.v1", "device lifecycle transitions", 365 * 86_400_000)

ALERTS = TopicSpec("kcloud.alerts.v1", "alerts opened and resolved", 90 * 86_400_000)
#: signed ledger checkpoints, kept for ever (retention -1) so that the ledger's history can be checked later
LEDGER_CHECKPOINTS = TopicSpec("kcloud.ledger-checkpoints.v1", "signed ledger checkpoints (kept for ever)", -1)

ALL_TOPICS: tuple[TopicSpec, ...] = (TELEMETRY, DEADLETTER, DEPLOYMENTS, ALERTS, LEDGER_CHECKPOINTS)
