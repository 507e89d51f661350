"""The gateway's Prometheus metrics, served on `GET /metrics`: requests by status, snapshots accepted
and rejected by vendor, bytes received, Kafka and audit failures, and request latency.

Each app has its own registry (no process-global state), so tests can build several apps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """The metric objects of one gateway app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kcloud_gateway_requests",
            "Requests to the /v1 API, by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.snapshots = Counter(
            "kcloud_gateway_snapshots",
            "Snapshots pushed, by token vendor and outcome (accepted: acknowledged by Kafka).",
            ["vendor", "outcome"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "kcloud_gateway_received_bytes", "Request body bytes read by the /v1 API.", registry=self.registry
        )
        self.kafka_failures = Counter(
            "kcloud_gateway_kafka_failures",
            "Pushes answered 503 because Kafka did not acknowledge them.",
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "kcloud_gateway_audit_failures",
            "Requests whose ingest_audit row could not be written at once (kept on disk and replayed; see the log).",
            registry=self.registry,
        )
        self.latency = Histogram(
            "kcloud_gateway_request_seconds",
            "Time to answer a /v1 request, Kafka acknowledgement included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
