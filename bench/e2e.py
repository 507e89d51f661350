"""End-to-end benchmark: a simulated fleet at its cadence through Kafka and the stream workers into PostgreSQL,
measured in one run against the database's own COPY ceiling.

What runs, each in its own process so that its CPU time is its own: the fleet driver (`bench.fleet_driver`: the
simulator and the collectors' producer), the Kafka broker, `--workers` stream workers (`kcloud streams worker`)
and PostgreSQL. After `--warmup` seconds (devices created, the group settled) a window of `--duration` seconds is
measured; then the driver stops, the pipeline drains, and the same rows are loaded by one binary COPY into a
fresh `device_samples` of the same schema. Reported:

- device samples/s stored in the window, counted in the database (`n_tup_ins` of the partitions), beside the
  rate offered by the fleet, and at the end the exact `count(*)` against what was sent;
- latency from `collected_at` to the row being queryable, p50/p99/max, from a probe node (`bench.probe`);
- the COPY ceiling and the ratio pipeline / ceiling;
- CPU ms per 1,000 samples of the collector, the broker, the workers and the database (`bench.procstats`), and
  the workers' peak RSS;
- bytes per stored sample (table + indexes), and after compression where TimescaleDB is installed.

`python -m bench.e2e` starts its own broker and PostgreSQL (state in `.kcloud/bench-e2e`, Kafka 29092/29093,
PostgreSQL 54349), runs in a new database and topic namespace (both removed afterwards), and stops what it
started. `run_e2e(settings, options)` (from `bench.e2e_core`) is the core, for a stack that already runs: the
smoke test calls it on the test stack.

Usage:
    python -m bench.e2e --nodes 42000 --interval 10 --duration 120 --warmup 60 --workers 2 --json e2e.json
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from bench.e2e_core import E2EOptions, E2EResult, run_e2e
from bench.storage import create_database, drop_database, sibling_url
from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.settings import Settings

__all__ = ["BENCH_STACK", "E2EOptions", "E2EResult", "machine", "main", "run_e2e"]


# -- command line ---------------------------------------------------------------------------------------------
BENCH_STACK: dict[str, object] = {  # the benchmark's own stack: not the ports of the demo, the tests or bench.collect
    "state_dir": Path(".kcloud/bench-e2e"),
    "kafka_bootstrap": "127.0.0.1:29092",
    "kafka_controller_port": 29093,
    "pg_port": 54349,
    "kafka_partitions": 6,
}


def machine() -> str:
    """CPUs, memory and the load average when the run began (the machine may be shared)."""
    import os

    mem_kib = next(
        (int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")),
        0,
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{len(os.sched_getaffinity(0))} cpus, {mem_kib / 2**20:.1f} GiB, load average at start {load}"


def _drop_topics(settings: Settings) -> None:
    from kafka.admin import KafkaAdminClient

    from kcloud.topics import ALL_TOPICS

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="kcloud-bench-e2e")
    try:
        existing = set(admin.list_topics())
        mine = [t for t in (settings.topic(spec) for spec in ALL_TOPICS) if t in existing]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


_DEFAULTS = E2EOptions()
cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command(help=(__doc__ or "").split("\n\n")[0] + "\n\nStarts its own Kafka (29092) and PostgreSQL (54349).")
def run(  # noqa: PLR0917 -- typer options
    nodes: Annotated[int, typer.Option(min=1, help="Simulated nodes of 8 accelerators.")] = _DEFAULTS.nodes,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between a node's snapshots.")] = (
        _DEFAULTS.interval_s
    ),
    duration: Annotated[float, typer.Option(min=1, help="Seconds measured, after the warm-up.")] = _DEFAULTS.duration_s,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of load before the measured window.")] = (
        _DEFAULTS.warmup_s
    ),
    workers: Annotated[int, typer.Option(min=1, max=6, help="Stream worker processes.")] = _DEFAULTS.workers,
    seed: Annotated[int, typer.Option(help="Fleet seed.")] = _DEFAULTS.seed,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write every figure to FILE.")] = None,
    keep_stack: Annotated[bool, typer.Option(help="Leave the bench Kafka and PostgreSQL running.")] = False,
) -> None:
    from bench.e2e_table import format_table, to_json
    from kcloud.errors import ServiceError
    from kcloud.settings import SettingsError, load_settings

    options = E2EOptions(nodes, interval, duration, warmup, workers, seed)
    stamp = time.strftime("%Y%m%d%H%M%S")
    try:
        stack = load_settings(overrides=BENCH_STACK).model_copy(update={"database_url": None})
        started = _stack_up(stack)
        settings = stack.model_copy(
            update={
                "database_url": sibling_url(stack.local_database_url, f"bench_{stamp}"),
                "topic_namespace": f"e2e{stamp}.",
            }
        )
        where = machine()
        create_database(settings.effective_database_url)
        try:
            result = run_e2e(settings, options)
        finally:
            with contextlib.suppress(Exception):
                drop_database(settings.effective_database_url)
            with contextlib.suppress(Exception):
                _drop_topics(settings)
            if not keep_stack:
                for service in started:
                    print(service.down())
    except (ServiceError, SettingsError, RuntimeError, psycopg.Error, OSError) as exc:
        typer.echo(f"bench.e2e: {exc}", err=True)
        raise typer.Exit(1) from None
    print()
    print(format_table(result, where))
    if json_file is not None:
        to_json(result, json_file, {"machine": where, "command": " ".join(["python -m bench.e2e", *sys.argv[1:]])})
        print(f"figures written to {json_file}")


def main() -> None:
    """Entry point of `python -m bench.e2e`."""
    cli(prog_name="python -m bench.e2e")


def _stack_up(settings: Settings) -> list[KafkaService | PostgresService]:
    """Start the bench's PostgreSQL and Kafka unless running; returns the services started here."""
    started: list[KafkaService | PostgresService] = []
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    for service in (PostgresService(settings), KafkaService(settings)):
        if not service.status().healthy:
            started.append(service)
        print(service.up())
    return started


if __name__ == "__main__":
    main()
