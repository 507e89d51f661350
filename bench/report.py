"""Benchmark of the evidence report: a 90-day report over 10,000 devices, built from a database filled
directly with SQL (the benchmark measures the report, not the ingest).

The database (a fresh one, `kcloud_bench_report` by default, on the server of the settings in force,
plain PostgreSQL) gets sites, nodes (8 devices each) and devices shaped like the simulated fleet's sites,
one daily device rollup and one daily report rollup per device and day (with equal sample counts, so the
report finds nothing stale to recompute), an allocation per device, and a ledger of `commissioned`
events plus offline/returned spells (about 2 % of devices a day) and failed-health spells (about 0.3 %),
hash-chained. A date-aligned period reads the daily rollups only, so hourly and minute rows are left
out. Then the report is built `--runs` times as JSON (each run timed, the rollup staleness check
included) and once more under pyinstrument, whose top frames name the bottleneck.

Usage:
    python -m bench.report --devices 10000 --days 90 --runs 3 --profile report-profile.txt
    python -m bench.report --keep        # leave the database for a look afterwards
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from kcloud.db.migrate import migrate
from kcloud.settings import Settings, load_settings
from reports.build import render
from reports.params import ReportParams

__all__ = ["fill", "main"]

START = datetime(2026, 1, 1, tzinfo=UTC)
_SITES = (
    ("kt-cloud-cheonan", "K-Cloud", ("rebellions", "RBLN-CA22", "npu"), ("nvidia", "NVIDIA H100 80GB HBM3", "gpu")),
    ("naver-cloud-chuncheon", "K-Cloud", ("furiosa", "RNGD", "npu"), ("nvidia", "NVIDIA H100 80GB HBM3", "gpu")),
    ("nhn-cloud-gwangju", "K-Cloud", ("sapeon", "X330", "npu"), ("nvidia", "NVIDIA H100 80GB HBM3", "gpu")),
    (
        "national-aicc-haenam",
        "national-ai-computing-centre",
        ("nvidia", "NVIDIA B200", "gpu"),
        ("furiosa", "RNGD", "npu"),
    ),
)
_WORKLOADS = ("llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "exaone-3.5-7.8b-instruct")

_FILL = [
    # sites and nodes: 8 devices per node, nodes spread over the sites round-robin
    "INSERT INTO sites (site_id, name, operator, programme) SELECT s, s, s, p "
    "FROM unnest(%(sites)s::text[], %(programmes)s::text[]) AS x(s, p)",
    "INSERT INTO nodes (node_id, site_id, hostname, first_seen, last_seen) "
    "SELECT 'bench-' || lpad(n::text, 6, '0'), (%(sites)s::text[])[1 + n %% %(nsites)s], NULL, %(start)s, %(end)s "
    "FROM generate_series(0, %(nodes)s - 1) AS n",
    # devices: per node, the site's NPU model on 3 nodes in 4, its GPU on the fourth
    "INSERT INTO devices (device_uuid, vendor_id, kind, model, node_id, first_seen, last_seen, status) "
    "SELECT md5('bench' || i), "
    "CASE WHEN (i / 8) %% 4 = 3 THEN (%(gpu_vendor)s::text[])[s] ELSE (%(npu_vendor)s::text[])[s] END, "
    "CASE WHEN (i / 8) %% 4 = 3 THEN (%(gpu_kind)s::text[])[s] ELSE (%(npu_kind)s::text[])[s] END, "
    "CASE WHEN (i / 8) %% 4 = 3 THEN (%(gpu_model)s::text[])[s] ELSE (%(npu_model)s::text[])[s] END, "
    "'bench-' || lpad((i / 8)::text, 6, '0'), %(start)s, %(end)s, 'active' "
    "FROM (SELECT i, 1 + (i / 8) %% %(nsites)s AS s FROM generate_series(0, %(devices)s - 1) AS i) x "
    "ORDER BY i",
    "INSERT INTO workloads (name, unit) SELECT w, 'tokens/s' FROM unnest(%(workloads)s::text[]) AS w "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO device_allocations (device_id, since, tenant, namespace) "
    "SELECT device_id, %(start)s, 'tenant-' || (device_id %% 23), 'ns-' || (device_id %% 5) FROM devices",
    # one daily rollup per device and day: utilization from a per-device level and a daily wobble
    "INSERT INTO device_rollup_1d (device_id, bucket, util_avg, util_max, power_avg, energy_j, temp_avg, samples, "
    "seconds_observed) "
    "SELECT d.device_id, day, u, least(100, u + 20), 40 + 3 * u, (40 + 3 * u) * 86400, 40 + u / 3, 8640, 86400 "
    "FROM devices d CROSS JOIN generate_series(%(start)s::timestamptz, %(last)s::timestamptz, interval '1 day') AS day "
    "CROSS JOIN LATERAL ("
    "SELECT ((d.device_id * 37) %% 90 + 10 * sin(extract(epoch FROM day) / 86400 + d.device_id))::real AS u) v",
    "INSERT INTO device_report_1d (device_id, bucket, workload_id, samples, units, counter_samples) "
    "SELECT r.device_id, r.bucket, 1 + r.device_id %% 3, 8640, r.util_avg * 40 * 86400, 8640 FROM device_rollup_1d r",
]
_LEDGER = """
INSERT INTO deployment_events (seq, device_id, device_uuid, event, at, node_id, site_id, details, prev_hash, hash)
OVERRIDING SYSTEM VALUE
SELECT n, device_id, device_uuid, event, at, node_id, site_id, details,
       CASE WHEN n > 1 THEN encode(sha256(convert_to((n - 1)::text, 'UTF8')), 'hex') END,
       encode(sha256(convert_to(n::text, 'UTF8')), 'hex')
FROM (
    SELECT row_number() OVER (ORDER BY at, device_id, event) AS n, * FROM (
        SELECT d.device_id, d.device_uuid, 'commissioned' AS event, d.first_seen AS at, d.node_id, n.site_id,
               '{}'::jsonb AS details
        FROM devices d JOIN nodes n USING (node_id)
        UNION ALL
        SELECT d.device_id, d.device_uuid, e.event, e.at, d.node_id, n.site_id, e.details
        FROM devices d JOIN nodes n USING (node_id)
        CROSS JOIN generate_series(0, %(days)s - 1) AS day
        CROSS JOIN LATERAL (
            SELECT %(start)s::timestamptz + day * interval '1 day'
                   + ((d.device_id * 7919 + day * 104729) %% 80000) * interval '1 second' AS went,
                   ((d.device_id * 31 + day * 17) %% 5400 + 300) * interval '1 second' AS len,
                   (d.device_id * 131 + day * 71) %% 1000 AS draw
        ) s
        CROSS JOIN LATERAL (VALUES
            ('offline', s.went + interval '60 seconds', jsonb_build_object('last_seen', s.went)),
            ('returned', s.went + s.len, '{}'::jsonb)
        ) AS e(event, at, details)
        WHERE s.draw < 20
        UNION ALL
        SELECT d.device_id, d.device_uuid, 'health_changed', e.at, d.node_id, n.site_id, e.details
        FROM devices d JOIN nodes n USING (node_id)
        CROSS JOIN generate_series(0, %(days)s - 1) AS day
        CROSS JOIN LATERAL (
            SELECT %(start)s::timestamptz + day * interval '1 day'
                   + ((d.device_id * 6151 + day * 7) %% 80000) * interval '1 second' AS went,
                   (d.device_id * 53 + day * 29) %% 1000 AS draw
        ) s
        CROSS JOIN LATERAL (VALUES
            (s.went, jsonb_build_object('from', 'ok', 'to', 'failed')),
            (s.went + interval '2 hours', jsonb_build_object('from', 'failed', 'to', 'ok'))
        ) AS e(at, details)
        WHERE s.draw < 3
    ) x
) y
"""


def _admin_url(url: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/postgres"


def fill(settings: Settings, devices: int, days: int) -> dict[str, float]:
    """Migrate the database of `settings` and fill it; returns seconds per step."""
    end = START + timedelta(days=days)
    migrate(settings.effective_database_url, settings, now=START)
    sites = [s[0] for s in _SITES]
    params: dict[str, Any] = {
        "sites": sites,
        "programmes": [s[1] for s in _SITES],
        "nsites": len(_SITES),
        "npu_vendor": [s[2][0] for s in _SITES],
        "npu_model": [s[2][1] for s in _SITES],
        "npu_kind": [s[2][2] for s in _SITES],
        "gpu_vendor": [s[3][0] for s in _SITES],
        "gpu_model": [s[3][1] for s in _SITES],
        "gpu_kind": [s[3][2] for s in _SITES],
        "nodes": (devices + 7) // 8,
        "devices": devices,
        "start": START,
        "end": end,
        "last": end - timedelta(days=1),
        "days": days,
        "workloads": list(_WORKLOADS),
    }
    steps: dict[str, float] = {}
    with psycopg.connect(settings.effective_database_url) as conn:
        for i, statement in enumerate([*_FILL, _LEDGER]):
            t = time.perf_counter()
            conn.execute(statement.encode(), params)
            steps[f"fill step {i + 1}"] = time.perf_counter() - t
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return steps


def _build(settings: Settings, params: ReportParams) -> bytes:
    with psycopg.connect(settings.effective_database_url) as conn:
        return render(conn, params, settings, "json", datetime(2026, 4, 1, tzinfo=UTC))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices in the database [10000]")
    parser.add_argument("--days", type=int, default=90, help="days of data and of the report [90]")
    parser.add_argument("--runs", type=int, default=3, help="timed report builds [3]")
    parser.add_argument(
        "--database", default="kcloud_bench_report", help="database to (re)create [kcloud_bench_report]"
    )
    parser.add_argument("--profile", type=Path, help="write pyinstrument's text profile of one build here")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    base = load_settings()
    admin = _admin_url(base.effective_database_url)
    url = f"{admin.rpartition('/')[0]}/{args.database}"
    settings = base.model_copy(update={"database_url": url, "timescale": "off"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    try:
        t = time.perf_counter()
        steps = fill(settings, args.devices, args.days)
        print(f"filled {args.devices} devices x {args.days} days in {time.perf_counter() - t:.1f}s")
        for name, seconds in steps.items():
            print(f"  {name}: {seconds:.1f}s")
        with psycopg.connect(url) as conn:
            for table in ("devices", "device_rollup_1d", "device_report_1d", "deployment_events"):
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                print(f"  {table}: {row[0] if row else 0} rows")
        params = ReportParams.parse(
            "evidence",
            start=START.date().isoformat(),
            end=(START + timedelta(days=args.days - 1)).date().isoformat(),
            granularity="month",
        )
        times: list[float] = []
        size = 0
        for _ in range(args.runs):
            t = time.perf_counter()
            size = len(_build(settings, params))
            times.append(time.perf_counter() - t)
        print(
            f"evidence report, {args.days} days, {args.devices} devices, JSON {size} bytes: "
            f"runs {', '.join(f'{x:.2f}s' for x in times)}; median {statistics.median(times or [0.0]):.2f}s"
        )
        if args.profile is not None:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
            _build(settings, params)
            profiler.stop()
            args.profile.write_text(profiler.output_text(unicode=True, color=False))
            print(f"profile written to {args.profile}")
        cpus = os.cpu_count()
        print(f"machine: {platform.node()} {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}")
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
