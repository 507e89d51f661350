"""Benchmark of one stream worker's ingest step in one process, without Kafka: what a worker costs per sample.

The simulated fleet's wire bytes are fed, tick after tick, through exactly what a worker runs on each batch
(`streams.ingest.decode_messages`, then `SampleSink.write`, and `SampleSink.sweep` every three ticks as the
worker's silence timer does at a 10 s cadence) into a fresh database. Ticks are in event time (no waiting), so a
steady state is quick to reach: the first tick commissions every device, the other warm-up ticks settle the
state the worker keeps, and only the measured ticks count. Reported, per
1,000 device samples: the worker's CPU split into decode and write, the CPU of the database backend serving the
worker (read from /proc: the server must run on this machine), and the samples/s one worker stores when it has a
core to itself (samples / (worker CPU + database CPU)).

Usage:
    python -m bench.ingest                     # = --nodes 21000 --warmup-ticks 2 --ticks 6; about 3 minutes
    python -m bench.ingest --nodes 2000 --warmup-ticks 31 --ticks 10 --profile ingest-profile.txt
    python -m bench.ingest --database-url postgresql://kcloud@127.0.0.1:54329/kcloud  # an existing server
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.procstats import cpu_seconds, rss_bytes
from bench.storage import create_database, drop_database, sibling_url
from collectors.simulator import SimulatedFleet
from kcloud.settings import Settings, load_settings
from kcloud.timewindow import TimeWindow
from kcloud.topics import TELEMETRY
from streams.app import tune_gc
from streams.ingest import RawMessage, decode_messages
from streams.sink import SampleSink

__all__ = ["IngestBench", "main", "run_ingest"]

BENCH_PG: dict[str, object] = {"state_dir": Path(".kcloud/bench-e2e"), "pg_port": 54349}
_SWEEP_EVERY = 3


@dataclass
class IngestBench:
    """Totals of the measured ticks."""

    nodes: int
    batch: int
    ticks: int
    samples_in: int = 0
    stored: int = 0
    decode_cpu_s: float = 0.0
    write_cpu_s: float = 0.0
    sweep_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_growth_bytes: int = 0  # resident memory added by the sink and its batches (the fleet's excluded)

    def per_1000(self, seconds: float) -> float:
        return 1000 * 1000 * seconds / max(1, self.samples_in)

    @property
    def worker_cpu_s(self) -> float:
        return self.decode_cpu_s + self.write_cpu_s + self.sweep_cpu_s

    def lines(self) -> list[str]:
        total = self.worker_cpu_s + self.db_cpu_s
        return [
            f"measured: {self.ticks} ticks of {self.nodes} nodes, batches of {self.batch} snapshots, "
            f"{self.samples_in:,} device samples in, {self.stored:,} stored, {self.wall_s:.1f} s wall",
            f"worker CPU ms / 1,000 samples: {self.per_1000(self.worker_cpu_s):.1f} "
            f"(decode {self.per_1000(self.decode_cpu_s):.1f}, write {self.per_1000(self.write_cpu_s):.1f}, "
            f"sweep {self.per_1000(self.sweep_cpu_s):.1f})",
            f"database backend CPU ms / 1,000 samples: {self.per_1000(self.db_cpu_s):.1f}",
            f"samples/s per core pair (worker + its backend): {self.samples_in / max(total, 1e-9):,.0f}; "
            f"wall rate {self.samples_in / max(self.wall_s, 1e-9):,.0f}/s",
            f"resident memory added by the ingest (caches + a batch): {self.rss_growth_bytes / 2**20:,.0f} MiB",
        ]


def _cpu() -> float:
    return time.process_time()


def _batches(fleet: SimulatedFleet, at: datetime, seq: int, size: int, topic: str) -> Iterator[list[RawMessage]]:
    batch: list[RawMessage] = []
    for offset, (key, value) in enumerate(fleet.iter_tick_bytes(at, seq)):
        batch.append(RawMessage(value=value, key=key, topic=topic, partition=hash(key) % 6, offset=offset))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_ingest(
    settings: Settings,
    *,
    nodes: int,
    warmup_ticks: int,
    ticks: int,
    batch: int,
    interval_s: float = 10.0,
    profile: Path | None = None,
    say: Any = print,
) -> IngestBench:
    """Feed `warmup_ticks` then `ticks` ticks of a `nodes`-node fleet through decode + sink; measure the last."""
    from kcloud.db.migrate import migrate

    migrate(settings.effective_database_url, settings)
    fleet = SimulatedFleet(nodes=nodes, seed=11)
    fleet.prepare()
    total = warmup_ticks + ticks
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=interval_s * (total + 2))
    window = TimeWindow.from_settings(settings)
    rss0 = rss_bytes(os.getpid()) or 0
    sink = SampleSink(settings)
    result = IngestBench(nodes=nodes, batch=batch, ticks=ticks)
    profiler: Any = None
    backend: int | None = None
    try:
        t_warm = time.perf_counter()
        db0 = 0.0
        t0 = 0.0
        for seq in range(total):
            measured = seq >= warmup_ticks
            if seq == warmup_ticks:
                backend = sink.backend_pid()
                db0 = cpu_seconds(backend) or 0.0
                t0 = time.perf_counter()
                if profile is not None:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.001)
                    profiler.start()
            at = start + timedelta(seconds=interval_s * seq)
            for msgs in _batches(fleet, at, seq, batch, settings.topic(TELEMETRY)):
                c0 = _cpu()
                good, bad = decode_messages(msgs, now=datetime.now(UTC), window=window)
                c1 = _cpu()
                if bad:
                    raise RuntimeError(f"{len(bad)} simulated snapshots were dead-lettered: {bad[0].detail}")
                written = sink.write([s for s, _ in good], {s.node.node_id: m.partition for s, m in good})
                c2 = _cpu()
                if measured:
                    result.decode_cpu_s += c1 - c0
                    result.write_cpu_s += c2 - c1
                    result.samples_in += sum(len(s.devices) for s, _ in good)
                    result.stored += written.stored
            if seq % _SWEEP_EVERY == _SWEEP_EVERY - 1:
                c0 = _cpu()
                sink.sweep(at, range(6))
                if measured:
                    result.sweep_cpu_s += _cpu() - c0
            if not measured:
                say(f"  warm-up tick {seq + 1}/{warmup_ticks} ({time.perf_counter() - t_warm:.0f} s)")
        result.wall_s = time.perf_counter() - t0
        result.rss_growth_bytes = (rss_bytes(os.getpid()) or 0) - rss0
        if backend is not None:
            result.db_cpu_s = (cpu_seconds(backend) or 0.0) - db0
        if profiler is not None and profile is not None:
            profiler.stop()
            profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            say(f"profile written to {profile}")
    finally:
        sink.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--nodes", type=int, default=21_000, help="simulated nodes of 8 accelerators (default 21000: half of 42,000)"
    )
    parser.add_argument("--warmup-ticks", type=int, default=2, help="ticks before the measured ones (default 2)")
    parser.add_argument("--ticks", type=int, default=6, help="measured ticks (default 6)")
    parser.add_argument("--batch", type=int, default=2000, help="snapshots per batch (default 2000, as the worker)")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the measured ticks here")
    parser.add_argument("--database-url", help="a server on this machine (default: start the bench's own)")
    args = parser.parse_args(argv)
    tune_gc()  # as `kcloud streams worker` runs
    stack = load_settings(overrides=BENCH_PG).model_copy(update={"database_url": None})
    started = None
    if args.database_url is None:
        from infra.postgres import PostgresService

        service = PostgresService(stack)
        if not service.status().healthy:
            started = service
        print(service.up())
        base = stack.local_database_url
    else:
        base = args.database_url
    url = sibling_url(base, f"bench_ingest_{time.strftime('%Y%m%d%H%M%S')}")
    settings = stack.model_copy(update={"database_url": url})
    create_database(url)
    try:
        result = run_ingest(
            settings,
            nodes=args.nodes,
            warmup_ticks=args.warmup_ticks,
            ticks=args.ticks,
            batch=args.batch,
            profile=args.profile,
        )
    finally:
        with contextlib.suppress(Exception):
            drop_database(url)
        if started is not None:
            print(started.down())
    print("\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
