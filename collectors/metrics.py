"""Self-metrics of a collector agent, in Prometheus form: what it read, what it skipped, how delivery
goes. Served on an optional port (`--metrics-port`) so that the agents themselves can be scraped.

Every agent gets its own `CollectorRegistry` (not the process-global one), so that tests and a process
running several agents never collide. Names start with `kcloud_collector_`:

| metric | type | meaning |
|---|---|---|
| `ticks_total{source,outcome}` | counter | ticks by outcome: `ok`, `skipped` (fetch failed or no devices) |
| `snapshots_total{source}` | counter | node snapshots produced |
| `samples_read_total{source}` | counter | device samples read from the source |
| `lines_skipped_total{source,reason}` | counter | input lines or values dropped by the parser, by reason |
| `spool_depth_records` / `spool_bytes` | gauge | snapshots waiting for Kafka, and their bytes on disk |
| `spool_memory_bytes` | gauge | spooled bytes held in memory because the disk refused them |
| `spooled_total` / `spool_dropped_total` | counter | snapshots spooled; dropped (oldest, from a full spool or disk) |
| `spool_write_errors_total{error}` | counter | failed spool writes by errno name (`ENOSPC`, `EDQUOT`, `EIO`, `EROFS`) |
| `delivered_total` / `delivery_failures_total` | counter | acknowledged by Kafka; failed sends (spooled) |
| `produce_latency_seconds` | histogram | send → broker acknowledgement |

Example:
    >>> metrics = AgentMetrics()
    >>> metrics.samples_read.labels(source="nvml").inc(8)
    >>> b"kcloud_collector_samples_read_total" in metrics.exposition()
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

__all__ = ["AgentMetrics"]

_PREFIX = "kcloud_collector"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class AgentMetrics:
    """The metric objects of one agent, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter(f"{_PREFIX}_ticks", "Ticks by outcome.", ["source", "outcome"], registry=r)
        self.snapshots = Counter(f"{_PREFIX}_snapshots", "Node snapshots produced.", ["source"], registry=r)
        self.samples_read = Counter(
            f"{_PREFIX}_samples_read", "Device samples read from the source.", ["source"], registry=r
        )
        self.lines_skipped = Counter(
            f"{_PREFIX}_lines_skipped",
            "Input lines or values the parser dropped, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.spool_depth = Gauge(f"{_PREFIX}_spool_depth_records", "Snapshots waiting in the spool.", registry=r)
        self.spool_bytes = Gauge(f"{_PREFIX}_spool_bytes", "Bytes of the spool on disk.", registry=r)
        self.spool_memory_bytes = Gauge(
            f"{_PREFIX}_spool_memory_bytes", "Spooled bytes held in memory (the disk refused them).", registry=r
        )
        self.spooled = Counter(f"{_PREFIX}_spooled", "Snapshots put in the spool.", registry=r)
        self.spool_dropped = Counter(
            f"{_PREFIX}_spool_dropped",
            "Spooled snapshots dropped (the oldest, from a full spool, disk or memory buffer; unreadable ones).",
            registry=r,
        )
        self.spool_write_errors = Counter(
            f"{_PREFIX}_spool_write_errors",
            "Spool writes the disk refused, by errno name.",
            ["error"],
            registry=r,
        )
        self.delivered = Counter(f"{_PREFIX}_delivered", "Snapshots acknowledged by Kafka.", registry=r)
        self.delivery_failures = Counter(
            f"{_PREFIX}_delivery_failures", "Sends that failed (the snapshot went to the spool).", registry=r
        )
        self.produce_latency = Histogram(
            f"{_PREFIX}_produce_latency_seconds",
            "Time from send to broker acknowledgement.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._spool_dropped_seen = 0
        self._dropped_of: Callable[[], int] | None = None
        self._errors_of: Callable[[], Mapping[str, int]] | None = None
        self._errors_seen: dict[str, int] = {}
        self._sync_lock = threading.Lock()
        self._server: Any = None

    def watch_spool(
        self,
        depth: Callable[[], int],
        size: Callable[[], int],
        dropped: Callable[[], int],
        memory: Callable[[], int] | None = None,
        errors: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Read the spool's depth and sizes at scrape time; `sync_spool` carries its drop and write-error
        counts over."""
        self.spool_depth.set_function(lambda: float(depth()))
        self.spool_bytes.set_function(lambda: float(size()))
        if memory is not None:
            self.spool_memory_bytes.set_function(lambda: float(memory()))
        self._dropped_of = dropped
        self._errors_of = errors

    def sync_spool(self) -> None:
        """Add the spool's drops and write errors since the last call to their counters."""
        if self._dropped_of is None:
            return
        with self._sync_lock:  # the delivery thread and `exposition` callers
            self._sync_spool()

    def _sync_spool(self) -> None:
        assert self._dropped_of is not None
        now = int(self._dropped_of())
        if now > self._spool_dropped_seen:
            self.spool_dropped.inc(now - self._spool_dropped_seen)
            self._spool_dropped_seen = now
        if self._errors_of is not None:
            for error, count in dict(self._errors_of()).items():
                seen = self._errors_seen.get(error, 0)
                if count > seen:
                    self.spool_write_errors.labels(error=error).inc(count - seen)
                    self._errors_seen[error] = count

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve `/metrics` on `addr:port` from a daemon thread until `stop_serving`."""
        self._server, _ = start_http_server(port, addr=addr, registry=self.registry)

    def stop_serving(self) -> None:
        """Stop the metrics server, if one was started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def value(self, name: str, **labels: str) -> int:
        """The current value of one sample, e.g. `value("delivered_total")` (0 before its first increment)."""
        return int(self.registry.get_sample_value(f"{_PREFIX}_{name}", labels) or 0)

    def exposition(self) -> bytes:
        """The current metrics as Prometheus text (what the port serves)."""
        self.sync_spool()
        return generate_latest(self.registry)
