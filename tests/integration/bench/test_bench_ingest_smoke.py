"""A few-second run of the worker-step benchmark (`bench.ingest`) on the test database, so that it cannot rot:
every sample fed in the measured ticks is stored, once, and each figure is reported. Counts, never speed."""

from __future__ import annotations

import psycopg

from bench.ingest import run_ingest
from kcloud.settings import Settings


def test_ingest_benchmark_stores_every_sample_of_its_ticks_and_reports_them(test_settings: Settings) -> None:
    said: list[str] = []
    result = run_ingest(test_settings, nodes=6, warmup_ticks=2, ticks=3, batch=4, say=said.append)

    with psycopg.connect(test_settings.effective_database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT time) FROM device_samples").fetchone()
    assert row is not None
    total, instants = row
    assert instants == 5  # two warm-up ticks and three measured ones
    assert result.samples_in == result.stored > 0
    assert result.stored % 8 == 0 and result.stored <= 6 * 8 * 3  # whole nodes (one may be in an offline spell)
    assert total > result.stored  # the warm-up ticks are stored too, not counted
    assert result.worker_cpu_s > 0 and result.db_cpu_s >= 0 and result.wall_s > 0
    lines = result.lines()
    assert any("worker CPU ms / 1,000 samples" in line for line in lines)
    assert any(line.startswith("  warm-up tick 2/2") for line in said)
