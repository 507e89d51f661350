"""A stream worker's own Prometheus metrics, served on `GET /metrics` beside the JSON `/counters/`.

The totals are the ingest processor's counters (`streams.ingest.IngestCounters`), read at scrape time,
so the two endpoints can never disagree; the batch write latency is a histogram of its own, and the
consumer lag per partition is set by the web handler just before each scrape (it asks the broker for the
partitions' end offsets). Each worker has its own `CollectorRegistry`, never the process-global one.
Imports `prometheus_client` and `streams.ingest` only. Names start with `kcloud_worker_`:

| metric | type | meaning |
|---|---|---|
| `messages_total` | counter | telemetry records read |
| `snapshots_valid_total` | counter | records that were valid snapshots |
| `samples_received_total` / `samples_stored_total` | counter | device samples in valid snapshots; stored |
| `late_samples_total` | counter | samples stored raw, too late for their minute's rollup |
| `dead_letters_total{reason}` | counter | records dead-lettered, by reason |
| `db_retries_total` | counter | database writes retried because the database was away |
| `db_rejected_writes_total` | counter | writes the database refused deterministically (batch halved) |
| `throughput_refused_total` | counter | samples stored without their throughput (over the vendor's cap) |
| `ledger_appends_total` | counter | deployment events appended to the ledger |
| `alerts_total` | counter | alert transitions (opened, resolved) published |
| `assigned_partitions` | gauge | telemetry partitions this worker holds |
| `consumer_lag_messages{partition}` | gauge | records of a held partition not yet stored (end offset - position) |
| `batch_write_seconds` | histogram | time of one batch's database write (retries included) |

Example:
    >>> from streams.ingest import IngestCounters
    >>> counters = IngestCounters(samples_stored=8)
    >>> metrics = WorkerMetrics(lambda: counters)
    >>> b"kcloud_worker_samples_stored_total 8.0" in metrics.exposition()
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.ingest import IngestCounters

__all__ = ["PREFIX", "WorkerMetrics"]

PREFIX = "kcloud_worker"
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: (metric name without prefix and `_total`, IngestCounters field, help text) of the plain totals
_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("messages", "messages", "Telemetry records read."),
    ("snapshots_valid", "snapshots_valid", "Records that were valid snapshots."),
    ("samples_received", "samples_in", "Device samples in the valid snapshots."),
    ("samples_stored", "samples_stored", "Device samples stored (a replayed sample is not counted again)."),
    ("late_samples", "late_samples", "Samples stored raw but too late for their minute's rollup."),
    ("db_retries", "db_retries", "Database writes retried because the database was away."),
    ("db_rejected_writes", "db_rejected_writes", "Writes the database refused deterministically."),
    ("throughput_refused", "throughput_refused", "Samples stored without their throughput (over the cap)."),
    ("ledger_appends", "deployment_events", "Deployment events appended to the ledger."),
    ("alerts", "alerts", "Alert transitions (opened, resolved) published on kcloud.alerts.v1."),
)


class _CountersCollector(Collector):
    """Reads the processor's counters and the last lag reading at each scrape."""

    def __init__(self, owner: WorkerMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        c = self._owner.counters()
        for name, attr, doc in _TOTALS:
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(getattr(c, attr)))
        letters = CounterMetricFamily(f"{PREFIX}_dead_letters", "Records dead-lettered, by reason.", labels=["reason"])
        for reason, n in sorted(c.reasons.items()):
            letters.add_metric([reason], float(n))
        yield letters
        lag = self._owner.lag
        yield GaugeMetricFamily(f"{PREFIX}_assigned_partitions", "Telemetry partitions held.", value=len(lag))
        per = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag_messages",
            "Records of a held telemetry partition not yet stored (end offset minus position).",
            labels=["partition"],
        )
        for partition, behind in sorted(lag.items()):
            per.add_metric([str(partition)], float(behind))
        yield per


class WorkerMetrics:
    """The metrics of one worker: its processor's counters, the write latency, the consumer lag."""

    def __init__(self, counters: Callable[[], IngestCounters]) -> None:
        self.counters = counters
        self.registry = CollectorRegistry(auto_describe=False)
        self.write_seconds = Histogram(
            f"{PREFIX}_batch_write_seconds",
            "Time of one batch's database write, retries included.",
            buckets=_WRITE_BUCKETS,
            registry=self.registry,
        )
        #: records behind per held partition, as of the last `set_lag`
        self.lag: dict[int, int] = {}
        self.registry.register(_CountersCollector(self))

    def set_lag(self, lag: Mapping[int, int]) -> None:
        """The records behind of each partition held now (partitions no longer held disappear)."""
        self.lag = {p: max(0, int(n)) for p, n in lag.items()}

    def exposition(self) -> bytes:
        """The current metrics as Prometheus text."""
        return generate_latest(self.registry)
