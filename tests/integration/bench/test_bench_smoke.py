"""The end-to-end benchmark in miniature, on the test stack (20 nodes, 3 ticks), so that it cannot rot: every
sample sent is stored once, latencies are measured, the COPY ceiling and its ratio computed, every stage's CPU
charged. Speed is never asserted here; it is measured by `python -m bench.e2e` and recorded in BENCHMARKS.md."""

from __future__ import annotations

import math
from pathlib import Path

import psycopg

from bench.e2e import E2EOptions, run_e2e
from bench.e2e_table import format_table
from infra.kafka import KafkaService
from kcloud.settings import Settings

NODES, DEVICES = 20, 8


def test_smoke_run_stores_every_sample_sent_and_reports_every_figure(
    test_settings: Settings, kafka_up: KafkaService
) -> None:
    options = E2EOptions(
        nodes=NODES,
        interval_s=1.0,
        warmup_s=1.0,
        duration_s=2.0,
        workers=1,
        probe_every_s=0.25,
        progress_every_s=1.0,
        drain_timeout_s=60.0,
    )
    said: list[str] = []
    result = run_e2e(test_settings, options, say=said.append)

    # counts: what was sent is stored, once; the fleet ticked once to commission, then once a second until past
    # the window (a node may be in an offline spell: it sends nothing then)
    ticks = 1 + math.ceil((options.warmup_s + options.duration_s + options.tail_s) / options.interval_s)
    fleet_samples = result.sent - result.probe_samples
    assert result.drained
    assert result.stored == result.sent
    assert result.stored_by_stats == result.stored
    assert fleet_samples % DEVICES == 0
    assert 0.9 * NODES * DEVICES * ticks <= fleet_samples <= NODES * DEVICES * ticks
    assert result.commission_samples >= 0.9 * NODES * DEVICES and result.commission_s is not None
    assert abs(result.window_s - options.duration_s) < 0.5
    assert result.offered_per_s > 0 and result.stored_per_s > 0

    # latency: probes were sent in the window and seen in the database, in a sane order
    assert result.probes_in_window >= options.duration_s / options.probe_every_s - 1
    assert result.probe_samples >= result.probes_in_window
    assert result.probes_unseen == 0
    assert result.latency_p50_s is not None and result.latency_p99_s is not None and result.latency_max_s is not None
    assert 0 < result.latency_p50_s <= result.latency_p99_s <= result.latency_max_s < 30

    # the ceiling loaded exactly the stored rows, and the ratio is computed from it
    assert result.ceiling is not None
    assert result.ceiling.rows == result.stored
    assert result.ceiling.rows_per_s > 0
    assert result.ratio is not None and result.ratio > 0
    ceiling_db = test_settings.effective_database_url.rpartition("/")[2] + "_ceiling"
    with psycopg.connect(test_settings.effective_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ceiling_db,)).fetchone() is None

    # every stage is charged its CPU; the worker's memory and the storage footprint are measured
    costs = {c.name: c for c in result.costs}
    assert set(costs) == {"collector", "broker", "workers", "database", "bench probe"}
    for name in ("collector", "broker", "workers", "database"):
        assert costs[name].pids, name
        assert costs[name].cpu_s is not None and costs[name].cpu_s >= 0, name
    assert result.worker_peak_rss_bytes and all(b > 50 * 2**20 for b in result.worker_peak_rss_bytes)
    assert result.bytes_per_sample is not None and result.bytes_per_sample > 0
    assert result.compression_note

    # progress was reported while it ran, and the report names every figure
    assert any("produced" in line and "stored" in line and "lag" in line for line in said)
    table = format_table(result)
    for figure in ("stored samples/s", "latency p50 / p99 / max", "COPY ceiling", "pipeline / ceiling", "peak RSS"):
        assert figure in table
    app_id = f"bench-e2e-{test_settings.topic_namespace.strip('.')}"
    assert not Path(f"{app_id}-data").exists() and not (test_settings.state_dir / "streams" / app_id).exists()
