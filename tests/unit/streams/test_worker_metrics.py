"""A worker's Prometheus metrics read its ingest counters at scrape time, and its lag gauge shows only the
partitions it holds now."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streams.ingest import IngestCounters
from streams.metrics import WorkerMetrics


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_totals_follow_the_counters_without_being_copied() -> None:
    counters = IngestCounters()
    metrics = WorkerMetrics(lambda: counters)
    assert _samples(metrics)[("kcloud_worker_samples_stored_total", ())] == 0
    counters.samples_stored += 16
    counters.deployment_events += 3
    counters.reasons.update({"invalid_json": 2, "key_mismatch": 1})
    got = _samples(metrics)
    assert got[("kcloud_worker_samples_stored_total", ())] == 16
    assert got[("kcloud_worker_ledger_appends_total", ())] == 3
    assert got[("kcloud_worker_dead_letters_total", (("reason", "invalid_json"),))] == 2
    assert got[("kcloud_worker_dead_letters_total", (("reason", "key_mismatch"),))] == 1


def test_a_partition_handed_away_leaves_the_lag_gauge() -> None:
    metrics = WorkerMetrics(IngestCounters)
    metrics.set_lag({0: 12, 2: 0})
    got = _samples(metrics)
    assert got[("kcloud_worker_consumer_lag_messages", (("partition", "0"),))] == 12
    assert got[("kcloud_worker_assigned_partitions", ())] == 2
    metrics.set_lag({2: 5})
    got = _samples(metrics)
    assert ("kcloud_worker_consumer_lag_messages", (("partition", "0"),)) not in got
    assert got[("kcloud_worker_consumer_lag_messages", (("partition", "2"),))] == 5
    assert got[("kcloud_worker_assigned_partitions", ())] == 1


def test_write_latency_is_a_histogram_of_every_batch() -> None:
    metrics = WorkerMetrics(IngestCounters)
    metrics.write_seconds.observe(0.03)
    metrics.write_seconds.observe(2.0)
    got = _samples(metrics)
    assert got[("kcloud_worker_batch_write_seconds_count", ())] == 2
    assert got[("kcloud_worker_batch_write_seconds_bucket", (("le", "0.05"),))] == 1
