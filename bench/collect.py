"""Benchmark of the collector side: the simulated fleet generating wire snapshots, and those snapshots
produced into a real Kafka broker and acknowledged.

Three phases in one process, on the same fleet, one after the other, so that their ratios are what a
noisy shared machine is judged by:

1. `generate`: `SimulatedFleet.tick_bytes` alone (what `kcloud collect sim` computes each tick);
2. `agent`: generation plus the agent's own delivery path (`SimSource.read` -> `SnapshotProducer.send_records`
   -> the delivery thread -> kafka-python, idempotent, acks=all, lz4, with the disk spool behind it),
   tick after tick, each timed until all its snapshots are acknowledged (as a running agent meets them);
3. `raw`: generation plus a bare kafka-python producer with the same settings, without the agent's
   delivery thread: what that layer costs.

Each rate is also set beside the rate the fleet needs in real time (`nodes / cadence` snapshots per
second; 40,000 nodes at 10 s = 4,000 snapshots/s = 32,000 device samples/s). The produced phases check
the topic's end offsets afterwards: a snapshot counts only when the broker has it.

Usage:
    python -m bench.collect --nodes 40000 --ticks 3 --start-kafka --profile collect-profile.txt
    python -m bench.collect --nodes 40000 --ticks 3                       # generation only
    python -m bench.collect --nodes 40000 --ticks 3 --kafka 127.0.0.1:9092  # a broker already running
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.simulator import SimulatedFleet

__all__ = ["GenerateResult", "ProduceResult", "main", "run_agent_path", "run_generate", "run_raw"]

START = datetime(2026, 11, 3, 5, 0, tzinfo=UTC)  # a Tuesday, 14:00 KST: the daily peak
NATIONAL_SAMPLES_PER_S = 33_000  # ~330,000 accelerators at 10 s
BENCH_KAFKA: dict[str, Any] = {  # the private broker of --start-kafka: not the ports tests or the demo use
    "state_dir": Path(".kcloud/bench"),
    "kafka_bootstrap": "127.0.0.1:19292",
    "kafka_controller_port": 19293,
    "kafka_partitions": 6,
}


@dataclass(frozen=True)
class GenerateResult:
    """`ticks` calls of `tick_bytes` on a prepared fleet (setup timed apart)."""

    nodes: int
    ticks: int
    setup_s: float
    wall_s: float
    cpu_s: float
    snapshots: int
    samples: int
    bytes: int
    snapshots_per_s: float
    samples_per_s: float
    ratio: float  # snapshots_per_s / (nodes / cadence)


@dataclass(frozen=True)
class ProduceResult:
    """`ticks` ticks generated and produced; counted from the topic's end offsets afterwards."""

    path: str
    compression: str
    sent: int
    on_topic: int
    wall_s: float
    cpu_s: float
    snapshots_per_s: float
    samples_per_s: float
    ratio: float
    spooled: int
    first_error: str | None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _at(cadence_s: float, seq: int) -> datetime:
    return START + timedelta(seconds=cadence_s * seq)


def run_generate(fleet: SimulatedFleet, ticks: int, cadence_s: float) -> GenerateResult:
    """Prepare the fleet, then time `ticks` consecutive `tick_bytes` calls."""
    t0 = time.perf_counter()
    fleet.prepare()
    setup = time.perf_counter() - t0
    snapshots = volume = 0
    c0, t0 = _cpu(), time.perf_counter()
    for i in range(ticks):
        batch = fleet.tick_bytes(_at(cadence_s, i), seq=i)
        snapshots += len(batch)
        volume += sum(len(key) + len(value) for key, value in batch)
        del batch
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    rate = snapshots / wall
    return GenerateResult(
        nodes=fleet.nodes,
        ticks=ticks,
        setup_s=setup,
        wall_s=wall,
        cpu_s=cpu,
        snapshots=snapshots,
        samples=snapshots * fleet.devices_per_node,
        bytes=volume,
        snapshots_per_s=rate,
        samples_per_s=rate * fleet.devices_per_node,
        ratio=rate / (fleet.nodes / cadence_s),
    )


def _end_offsets(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="kcloud-bench-offsets")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return int(sum(offsets.values()))
    finally:
        consumer.close()


def _result(
    path: str, fleet: SimulatedFleet, cadence_s: float, *, sent: int, on_topic: int, **kw: Any
) -> ProduceResult:
    rate = on_topic / kw["wall_s"]
    return ProduceResult(
        path=path,
        sent=sent,
        on_topic=on_topic,
        snapshots_per_s=rate,
        samples_per_s=rate * fleet.devices_per_node,
        ratio=rate / (fleet.nodes / cadence_s),
        **kw,
    )


def run_agent_path(fleet: SimulatedFleet, ticks: int, cadence_s: float, settings: Any, first_seq: int) -> ProduceResult:
    """Generate and produce `ticks` ticks through the agent's `SimSource` and `SnapshotProducer` (disk
    spool behind it), until every snapshot is acknowledged."""
    from collectors.agent import SimSource
    from collectors.metrics import AgentMetrics
    from collectors.producer import SnapshotProducer
    from collectors.spool import Spool
    from kcloud.topics import TELEMETRY

    topic = settings.topic(TELEMETRY)
    before = _end_offsets(settings.kafka_bootstrap, topic)
    source, metrics = SimSource(fleet), AgentMetrics()
    with tempfile.TemporaryDirectory(prefix="kcloud-bench-spool-") as spool_dir:
        producer = SnapshotProducer(settings, spool=Spool(Path(spool_dir), 1 << 30), metrics=metrics)
        deadline = time.monotonic() + 60
        while not producer.connected:  # the timing starts on a connected producer, as in a running agent
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: no broker answers on {settings.kafka_bootstrap}")
            time.sleep(0.05)
        sent, acked = 0, False
        c0, t0 = _cpu(), time.perf_counter()
        for i in range(first_seq, first_seq + ticks):

            def seq(i: int = i) -> int:
                return i

            sent += producer.send_records(source.read(_at(cadence_s, i), seq).records)
            acked = producer.flush(timeout=600)  # tick by tick, as a running agent meets them
            if not acked:
                break
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        producer.close(timeout=30)
    on_topic = _end_offsets(settings.kafka_bootstrap, topic) - before
    return _result(
        "agent",
        fleet,
        cadence_s,
        compression=producer.compression,
        sent=sent,
        on_topic=on_topic,
        wall_s=wall,
        cpu_s=cpu,
        spooled=int(metrics.registry.get_sample_value("kcloud_collector_spooled_total") or 0),
        first_error=None if acked else "not every snapshot was acknowledged within 600 s",
    )


def run_raw(fleet: SimulatedFleet, ticks: int, cadence_s: float, settings: Any, first_seq: int) -> ProduceResult:
    """Generate and send `ticks` ticks with a bare kafka-python producer (the agent's producer settings,
    no delivery thread, no spool), flush, and count what reached the topic."""
    from kafka import KafkaProducer

    from collectors.producer import producer_config
    from kcloud.topics import TELEMETRY

    topic = settings.topic(TELEMETRY)
    before = _end_offsets(settings.kafka_bootstrap, topic)
    config = producer_config(settings, client_id="kcloud-bench-raw")
    producer = KafkaProducer(**config)
    producer.partitions_for(topic)
    errors: list[str] = []
    sent = 0
    failed: Callable[[BaseException], None] = lambda exc: errors.append(repr(exc))  # noqa: E731
    try:
        c0, t0 = _cpu(), time.perf_counter()
        for i in range(first_seq, first_seq + ticks):
            for key, value in fleet.tick_bytes(_at(cadence_s, i), seq=i):
                producer.send(topic, key=key, value=value).add_errback(failed)
                sent += 1
        producer.flush(timeout=600)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        producer.close(timeout=30)
    on_topic = _end_offsets(settings.kafka_bootstrap, topic) - before
    return _result(
        "raw",
        fleet,
        cadence_s,
        compression=config["compression_type"],
        sent=sent,
        on_topic=on_topic,
        wall_s=wall,
        cpu_s=cpu,
        spooled=0,
        first_error=errors[0] if errors else None,
    )


@contextmanager
def _bench_broker(settings: Any) -> Iterator[None]:
    """The bench's own broker (state .kcloud/bench, ports 19292/19293), stopped afterwards if started here."""
    from infra.kafka import KafkaService

    service = KafkaService(settings)
    already = service.running_pid() is not None
    print(service.up(), file=sys.stderr)
    try:
        yield
    finally:
        if not already:
            print(service.down(), file=sys.stderr)


def _drop_topics(settings: Any) -> None:
    """Delete this run's topics (their namespace is unique to the run), so repeated runs do not fill the disk."""
    from kafka.admin import KafkaAdminClient

    from kcloud.topics import ALL_TOPICS

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="kcloud-bench")
    try:
        mine = [settings.topic(spec) for spec in ALL_TOPICS]
        admin.delete_topics([t for t in mine if t in set(admin.list_topics())])
    finally:
        admin.close()


@contextmanager
def _profile_threads(out: Path) -> Iterator[None]:
    """pyinstrument over the calling thread and every thread started inside the block (the agent's work is
    in its delivery thread and in kafka-python's sender thread); one text report per thread into `out`."""
    import threading

    from pyinstrument import Profiler

    reports: list[tuple[str, Profiler]] = []
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def profiled(thread: threading.Thread) -> None:
        profiler = Profiler(async_mode="disabled")
        profiler.start()
        try:
            original(thread)
        finally:
            profiler.stop()
            reports.append((thread.name, profiler))

    main_profiler = Profiler(async_mode="disabled")
    threading.Thread._bootstrap_inner = profiled  # type: ignore[attr-defined]
    main_profiler.start()
    try:
        yield
    finally:
        main_profiler.stop()
        threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]
        sections = [("main", main_profiler), *reports]
        out.write_text(
            "\n".join(
                f"=== thread {name} ===\n{p.output_text(unicode=True, show_all=False)}"
                for name, p in sections
                if p.last_session is not None and p.last_session.duration > 0.05
            )
        )


def _machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
    }


def _print_produce(r: ProduceResult, gen: GenerateResult, need: float) -> None:
    print(
        f"{r.path + ':':9} {r.on_topic}/{r.sent} snapshots on the topic in {r.wall_s:.2f}s (cpu {r.cpu_s:.2f}s), "
        f"{r.compression}: {r.snapshots_per_s:,.0f} snapshots/s, {r.samples_per_s:,.0f} device samples/s; "
        f"x{r.ratio:.2f} of the {need:,.0f} snapshots/s needed; {r.snapshots_per_s / gen.snapshots_per_s:.2f} of "
        f"generation alone"
        + (f"; {r.spooled} spooled" if r.spooled else "")
        + (f"; {r.first_error}" if r.first_error else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=40_000, help="simulated nodes (default 40000)")
    parser.add_argument("--ticks", type=int, default=3, help="ticks per phase (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="fleet seed (default 1)")
    parser.add_argument("--cadence", type=float, default=10.0, help="seconds between ticks (default 10)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--kafka", metavar="BOOTSTRAP", help="also produce into this running broker")
    where.add_argument("--start-kafka", action="store_true", help="also produce, into a broker of its own on 19292")
    parser.add_argument("--no-raw", action="store_true", help="skip the bare kafka-python phase")
    parser.add_argument(
        "--profile", type=Path, help="then profile one more agent-path tick with pyinstrument, per thread, into FILE"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.ticks < 1:
        parser.error("--nodes and --ticks must be at least 1")

    fleet = SimulatedFleet(nodes=args.nodes, seed=args.seed)
    results: dict[str, Any] = {"machine": _machine(), "command": " ".join(["python -m bench.collect", *sys.argv[1:]])}
    gen = run_generate(fleet, args.ticks, args.cadence)
    results["generate"] = asdict(gen)
    need = args.nodes / args.cadence
    print(
        f"generate: {args.nodes} nodes x {args.ticks} ticks in {gen.wall_s:.2f}s (cpu {gen.cpu_s:.2f}s, setup "
        f"{gen.setup_s:.1f}s): {gen.snapshots_per_s:,.0f} snapshots/s, {gen.samples_per_s:,.0f} device samples/s, "
        f"{gen.bytes / gen.wall_s / 2**20:.0f} MiB/s; x{gen.ratio:.2f} of the {need:,.0f} snapshots/s needed, "
        f"x{gen.samples_per_s / NATIONAL_SAMPLES_PER_S:.2f} of the national {NATIONAL_SAMPLES_PER_S:,} samples/s"
    )
    if args.kafka or args.start_kafka:
        from kcloud.settings import load_settings

        overrides = dict(BENCH_KAFKA) if args.start_kafka else {"kafka_bootstrap": args.kafka}
        overrides["topic_namespace"] = f"bench{int(time.time())}."
        settings = load_settings(overrides=overrides)
        broker: AbstractContextManager[None] = _bench_broker(settings) if args.start_kafka else nullcontext()
        with broker:
            if args.kafka:
                from infra.kafka import KafkaService

                KafkaService(settings).ensure_topics()
            try:
                agent = run_agent_path(fleet, args.ticks, args.cadence, settings, first_seq=args.ticks)
                results["agent"] = asdict(agent)
                _print_produce(agent, gen, need)
                if not args.no_raw:
                    raw = run_raw(fleet, args.ticks, args.cadence, settings, first_seq=2 * args.ticks)
                    results["raw"] = asdict(raw)
                    _print_produce(raw, gen, need)
                if args.profile:  # after the timed phases, so that the profiler's overhead is in no figure
                    with _profile_threads(args.profile):
                        run_agent_path(fleet, 1, args.cadence, settings, first_seq=3 * args.ticks)
                    print(f"profile:  one more agent-path tick under pyinstrument, per thread, in {args.profile}")
            finally:
                _drop_topics(settings)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_rss_mib"] = peak_mib
    print(f"peak RSS {peak_mib:.0f} MiB; machine {results['machine']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
