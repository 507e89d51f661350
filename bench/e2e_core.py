"""The core of the end-to-end benchmark (`bench.e2e`): one run on a Kafka and PostgreSQL that already run.

`run_e2e(settings, options)` migrates the database of `settings`, starts `options.workers` stream workers
(`kcloud streams worker`), the fleet driver (`bench.fleet_driver`) and the latency probe (`bench.probe`), prints
progress while it runs, measures the window after the warm-up, lets the pipeline drain, then measures storage
and the COPY ceiling (`bench.storage`). Every stage runs in its own process, so `bench.procstats` can charge
each its own CPU time.

Example:
    >>> result = run_e2e(settings, E2EOptions(nodes=20, interval_s=1.0, warmup_s=1.0, duration_s=2.0, workers=1))
    >>> result.stored == result.sent
    True
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.fleet_driver import FleetDriver
from bench.probe import LatencyProbe, percentile
from bench.procstats import cpu_seconds, peak_rss_bytes, tree_cpu_seconds
from bench.storage import (
    CeilingResult,
    bytes_per_sample,
    compressed_bytes_per_sample,
    copy_ceiling,
    count_rows,
    create_database,
    drop_database,
    inserted_rows,
    sibling_url,
)
from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.settings import Settings
from streams.launcher import WorkerProcess

__all__ = ["E2EOptions", "E2EResult", "ProcessCost", "run_e2e"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class E2EOptions:
    """What to run: fleet size and cadence, the timing of the run, and how many stream workers."""

    nodes: int = 42_000
    interval_s: float = 10.0
    duration_s: float = 120.0
    warmup_s: float = 30.0
    workers: int = 2
    seed: int = 1
    slices: int = 20
    probe_every_s: float = 0.5
    drain_timeout_s: float = 60.0
    progress_every_s: float = 5.0
    commission_timeout_s: float = 180.0
    tail_s: float = 2.0  # the fleet ticks on this long after the window, so that its CPU is read while it runs

    @property
    def commission_lead_s(self) -> float:
        """From the commissioning tick to the first timed tick: time enough to store it (about 0.4 ms a new
        device on the 2-core machine of BENCHMARKS.md), at least 3 s, at most `commission_timeout_s`."""
        return min(self.commission_timeout_s, max(3.0, self.nodes * 8 * 0.0004))


@dataclass(frozen=True)
class ProcessCost:
    """CPU of one stage over the measured window, and per 1,000 samples it handled."""

    name: str
    pids: list[int]
    cpu_s: float | None
    ms_per_1k: float | None
    per: str  # the samples the figure is per: "stored" or "produced"


@dataclass
class E2EResult:
    """Every figure of one run (JSON-serialisable through dataclasses.asdict)."""

    options: E2EOptions
    commission_samples: int = 0
    commission_s: float | None = None  # None: not all stored within the timeout
    window: tuple[float, float] = (0.0, 0.0)  # Unix times of the measured window
    window_s: float = 0.0
    offered_per_s: float = 0.0
    stored_per_s: float = 0.0
    lag_at_window_start: int = 0
    lag_at_window_end: int = 0
    sent: int = 0  # device samples: the commissioning tick, the timed ticks and the probes
    probe_samples: int = 0
    stored: int = 0
    stored_by_stats: int = 0
    drained: bool = False
    driver_behind_s: float = 0.0
    probes_in_window: int = 0
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    probes_unseen: int = 0
    ceiling: CeilingResult | None = None
    ratio: float | None = None
    costs: list[ProcessCost] = field(default_factory=list)
    worker_peak_rss_bytes: list[int] = field(default_factory=list)
    bytes_per_sample: float | None = None
    compressed_bytes_per_sample: float | None = None
    compression_note: str = ""
    worker_counters: list[dict[str, object]] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Meters:
    """The pids of every stage and a reading of all their CPU times at once."""

    def __init__(self, settings: Settings, driver: FleetDriver, workers: list[WorkerProcess]) -> None:
        self.driver = driver.pid
        self.broker = KafkaService(settings).running_pid()
        self.postmaster = PostgresService(settings).server_pid()
        self.workers = [w.proc.pid for w in workers if w.proc is not None]

    def read(self) -> dict[str, float | None]:
        worker_times = [cpu_seconds(pid) for pid in self.workers]
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "collector": cpu_seconds(self.driver) if self.driver else None,
            "broker": cpu_seconds(self.broker) if self.broker else None,
            "workers": None if None in worker_times else sum(t or 0.0 for t in worker_times),
            "database": tree_cpu_seconds(self.postmaster) if self.postmaster else None,
            "bench probe": own.ru_utime + own.ru_stime,
        }

    def pids(self, name: str) -> list[int]:
        table: dict[str, list[int | None]] = {
            "collector": [self.driver],
            "broker": [self.broker],
            "workers": list(self.workers),
            "database": [self.postmaster],
        }
        return [p for p in table.get(name, []) if p]


def _costs(
    meters: _Meters, before: dict[str, float | None], after: dict[str, float | None], stored: int, produced: int
) -> list[ProcessCost]:
    out = []
    for name, start in before.items():
        end = after.get(name)
        cpu = end - start if start is not None and end is not None else None
        per = "produced" if name in ("collector", "broker") else "stored"
        count = produced if per == "produced" else stored
        ms = cpu * 1000 / (count / 1000) if cpu is not None and count > 0 else None
        out.append(ProcessCost(name, meters.pids(name), cpu, ms, per))
    return out


def _start_workers(settings: Settings, count: int, say: Say) -> list[WorkerProcess]:
    logs = settings.state_dir / "logs"
    workers: list[WorkerProcess] = []
    try:
        for i in range(count):
            port = _free_port()
            workers.append(WorkerProcess(settings, logs / f"{settings.app_id}-{i}.log", web_port=port).start(120))
        deadline = time.monotonic() + 120
        while sum(len(w.counters()["assigned_partitions"]) for w in workers) < settings.kafka_partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {count} worker(s) did not share the {settings.kafka_partitions} partitions")
            time.sleep(0.5)
    except BaseException:
        for w in workers:
            w.stop()
        raise
    say(f"{count} stream worker(s) up, {settings.kafka_partitions} partitions assigned; logs in {logs}")
    return workers


def run_e2e(settings: Settings, options: E2EOptions, say: Say = print) -> E2EResult:
    """Run the benchmark on the running Kafka and PostgreSQL of `settings`, in its database (migrated here) and
    its topic namespace; a second database `<name>_ceiling` is made for the COPY ceiling and dropped after.
    Returns every figure; raises RuntimeError (or InfraError) with the failing part's log tail."""
    from kcloud.db.migrate import migrate

    ns = settings.topic_namespace.strip(".") or "default"
    settings = settings.model_copy(update={"app_id": f"bench-e2e-{ns}"})
    url = settings.effective_database_url
    migrate(url, settings)
    KafkaService(settings).ensure_topics()
    result = E2EResult(options)
    workers = _start_workers(settings, options.workers, say)
    run_for = options.warmup_s + options.duration_s + options.tail_s
    driver = FleetDriver(
        settings,
        nodes=options.nodes,
        interval_s=options.interval_s,
        run_for_s=run_for,
        seed=options.seed,
        commission=True,
        commission_lead_s=options.commission_lead_s,
    )
    probe = LatencyProbe(settings, every_s=options.probe_every_s, seed=options.seed)
    try:
        driver.start()
        say(f"building the fleet of {options.nodes:,} nodes ...")
        result.commission_samples = driver.wait_commission(600)
        _commission(settings, options, result, say)
        start = driver.wait_ready(options.commission_lead_s + 60)
        probe.start()
        meters = _Meters(settings, driver, workers)
        say(
            f"fleet ticking every {options.interval_s:g}s: {options.warmup_s:g}s warm-up, "
            f"{options.duration_s:g}s measured"
        )
        _measure(settings, options, driver=driver, probe=probe, meters=meters, start=start, result=result, say=say)
        _drain(settings, options, driver=driver, probe=probe, workers=workers, result=result, say=say)
        result.worker_peak_rss_bytes = [peak_rss_bytes(p) or 0 for p in meters.workers]
        with contextlib.suppress(OSError):
            result.worker_counters = [w.counters() for w in workers]
    finally:
        probe.stop()
        driver.stop()
        for w in workers:
            w.stop()
        for datadir in (Path(f"{settings.app_id}-data"), settings.state_dir / "streams" / settings.app_id):
            shutil.rmtree(datadir, ignore_errors=True)  # faust's own data dir of this run's app id
    _storage(settings, result, meters, say)
    return result


def _commission(settings: Settings, options: E2EOptions, result: E2EResult, say: Say) -> None:
    """The first tick, the whole fleet at once, waited for until stored: the first sight of every device (devices
    rows, `commissioned` ledger events) is not what the timed run measures. It is stamped one interval before the
    timed ticks begin (`commission_lead_s` from now), so that no device looks silent in event time."""
    say(f"commissioning: one tick of {result.commission_samples:,} samples, every device new; waiting until stored")
    t0 = time.monotonic()
    deadline = t0 + options.commission_timeout_s
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        while (stored := inserted_rows(conn)) < result.commission_samples:
            if time.monotonic() > deadline:
                say(f"commissioning: {stored:,} stored after {options.commission_timeout_s:g}s; going on regardless")
                return
            time.sleep(min(options.progress_every_s, 1.0))
    result.commission_s = time.monotonic() - t0
    say(f"commissioning: stored in {result.commission_s:.1f}s")


def _progress(phase: str, elapsed: float, counts: tuple[int, int], last: tuple[float, int, int], say: Say) -> None:
    produced, stored = counts
    dt = max(1e-6, elapsed - last[0])
    say(
        f"[{elapsed:6.1f}s {phase:8}] produced {produced:>11,} ({(produced - last[1]) / dt:>8,.0f}/s)  "
        f"stored {stored:>11,} ({(stored - last[2]) / dt:>8,.0f}/s)  lag {produced - stored:>9,} samples"
    )


def _measure(
    settings: Settings,
    options: E2EOptions,
    *,
    driver: FleetDriver,
    probe: LatencyProbe,
    meters: _Meters,
    start: float,
    result: E2EResult,
    say: Say,
) -> None:
    """Run until the end of the window, printing progress; fill the window's figures into `result`."""
    window_start, window_end = start + options.warmup_s, start + options.warmup_s + options.duration_s
    marks: dict[str, tuple[float, int, int, dict[str, float | None]]] = {}
    base = result.commission_samples
    next_report = start + options.progress_every_s
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        last = (0.0, base, inserted_rows(conn))
        while True:
            if driver.proc is not None and driver.proc.poll() is not None and driver.proc.returncode != 0:
                raise RuntimeError("; ".join(driver.errors[-5:]) or "the fleet driver stopped")
            now = time.time()
            for mark, at in (("start", window_start), ("end", window_end)):
                if mark not in marks and now >= at:
                    produced = base + driver.totals.samples + probe.samples_sent
                    marks[mark] = (now, produced, inserted_rows(conn), meters.read())
            if "end" in marks:
                break
            if now >= next_report:
                produced, stored = base + driver.totals.samples + probe.samples_sent, inserted_rows(conn)
                phase = "warm-up" if now < window_start else "measured"
                _progress(phase, now - start, (produced, stored), last, say)
                last = (now - start, produced, stored)
                next_report += options.progress_every_s
            time.sleep(min(0.1, max(0.0, min(window_end, next_report) - time.time())))
    (t0, p0, s0, cpu0), (t1, p1, s1, cpu1) = marks["start"], marks["end"]
    result.window_s = t1 - t0
    result.offered_per_s = (p1 - p0) / result.window_s
    result.stored_per_s = (s1 - s0) / result.window_s
    result.lag_at_window_start, result.lag_at_window_end = p0 - s0, p1 - s1
    result.costs = _costs(meters, cpu0, cpu1, stored=s1 - s0, produced=p1 - p0)
    result.window = (window_start, window_end)


def _drain(
    settings: Settings,
    options: E2EOptions,
    *,
    driver: FleetDriver,
    probe: LatencyProbe,
    workers: list[WorkerProcess],
    result: E2EResult,
    say: Say,
) -> None:
    """Stop sending, wait for the driver's flush and for the workers to store everything sent."""
    probe.stop_sending()
    totals = driver.wait_done(600)
    result.driver_behind_s = totals.behind_s
    deadline = time.monotonic() + options.drain_timeout_s
    stored = 0
    while True:
        expected = result.commission_samples + totals.samples + probe.samples_sent
        with contextlib.suppress(OSError):  # a worker busy with a batch answers late: ask again
            stored = sum(int(str(w.counters()["samples_stored"])) for w in workers)
        if stored >= expected or time.monotonic() > deadline:
            break
        say(f"draining: {stored:,} of {expected:,} samples stored")
        time.sleep(2.0)
    probe.stop(drain_s=5.0)
    result.sent = result.commission_samples + totals.samples + probe.samples_sent
    result.probe_samples = probe.samples_sent
    seen = probe.latencies(*result.window)
    lat = probe.latencies(*result.window, unseen_as_lower_bound=True)
    result.probes_in_window = probe.sent_between(*result.window)
    result.probes_unseen = result.probes_in_window - len(seen)
    result.latency_p50_s, result.latency_p99_s = percentile(lat, 50), percentile(lat, 99)
    result.latency_max_s = max(lat) if lat else None


def _storage(settings: Settings, result: E2EResult, meters: _Meters, say: Say) -> None:
    """Once the workers are stopped: the exact count, bytes per sample, the COPY ceiling (in a sibling database,
    dropped after) and compression."""
    url = settings.effective_database_url
    time.sleep(1.5)  # the statistics of the workers' last transactions reach the server within a second
    with psycopg.connect(url, autocommit=True) as conn:
        result.stored_by_stats = inserted_rows(conn)
    result.stored = count_rows(url)
    result.drained = result.stored >= result.sent
    result.bytes_per_sample = bytes_per_sample(url, result.stored)
    name = url.rpartition("/")[2].split("?", 1)[0]
    target = sibling_url(url, f"{name}_ceiling")
    drop_database(target)
    create_database(target)
    say(f"COPY ceiling: loading the {result.stored:,} stored rows by one binary COPY into a fresh database ...")
    try:

        def db_cpu() -> float | None:
            return tree_cpu_seconds(meters.postmaster) if meters.postmaster else None

        result.ceiling = copy_ceiling(url, target, settings, settings.state_dir / "bench-e2e-tmp", db_cpu)
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_database(target)
    if result.ceiling.rows_per_s > 0:
        result.ratio = result.stored_per_s / result.ceiling.rows_per_s
    result.compressed_bytes_per_sample, result.compression_note = compressed_bytes_per_sample(url, result.stored)
