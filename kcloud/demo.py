"""The main job on the embedded default: a simulated fleet through the whole pipeline.

Assumes `kcloud infra up` (the Makefile's `run` target does it): migrates, starts one stream worker
process, sends `ticks` rounds of snapshots from `nodes` simulated nodes (plus one malformed message, to
show the dead-letter path), waits until the database holds every sample, and prints what it measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import typer

from collectors.producer import SnapshotProducer
from collectors.simulator import SimulatedFleet
from infra.errors import InfraError
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.settings import Settings
from streams.launcher import WorkerProcess

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    snapshots_sent: int
    samples_sent: int
    samples_stored: int
    deadlettered: int
    seconds: float


def _stored(url: str, node_prefix: str, since: datetime) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM device_samples s JOIN devices d USING (device_id) "
            "WHERE d.node_id LIKE %s AND s.time >= %s",
            (node_prefix + "-%", since),
        ).fetchone()
    return int(row[0]) if row else 0


def run_demo(settings: Settings, nodes: int = 50, ticks: int = 6, timeout: float = 120.0) -> DemoResult:
    """Run the demo and return its figures; raises InfraError when the pipeline does not deliver."""
    url = settings.effective_database_url
    migrate(url, settings)
    KafkaService(settings).ensure_topics()
    run_id = datetime.now(UTC).strftime("%H%M%S")
    fleet = SimulatedFleet(nodes=nodes, seed=int(run_id), node_prefix=f"demo{run_id}")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10 * ticks)
    log_path = settings.state_dir.resolve() / "logs" / "demo-worker.log"
    t0 = time.monotonic()
    with WorkerProcess(settings, log_path) as worker:
        producer = SnapshotProducer(settings)
        sent = 0
        with typer.progressbar(range(ticks), label=f"sending {nodes} nodes x {ticks} ticks") as bar:
            for tick in bar:
                sent += producer.send_all(fleet.tick(start + timedelta(seconds=10 * tick), seq=tick))
        producer.send_raw(b'{"schema": "kcloud.telemetry/1", "node": "truncated', key=b"demo-bad")
        producer.flush()
        producer.close()
        expected = sent * fleet.devices_per_node
        deadline = time.monotonic() + timeout
        stored = 0
        while time.monotonic() < deadline:
            stored = _stored(url, fleet.node_prefix, start)
            if stored >= expected:
                break
            time.sleep(0.5)
        counters = worker.counters()
        while counters["deadlettered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
            counters = worker.counters()
    if stored < expected:
        raise InfraError(
            f"demo: only {stored} of {expected} samples reached the database in {timeout:.0f}s; "
            f"see the worker log {log_path}"
        )
    return DemoResult(sent, expected, stored, int(counters["deadlettered"]), time.monotonic() - t0)
