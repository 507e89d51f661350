"""`kcloud demo`: the whole service on the embedded default, supervised in one foreground process.

Brings the local Kafka and PostgreSQL up, applies the migrations, then runs and watches a stream worker,
the vendor gateway and a simulated-fleet collector (live: one snapshot per node per interval, stamped
with the wall clock), plus one malformed message to show the dead-letter path. A status line every few
seconds shows samples/s stored, ingest lag, devices by status and open alerts. A child that dies is
restarted (a few times at most). Ctrl-C, or the end of `--duration`, stops the collector first, waits
until the worker has stored what was delivered, then stops the rest and prints the totals.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from collectors.producer import SnapshotProducer
from infra import stack
from infra.errors import InfraError
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.ledger import trusted_key, verify_ledger
from kcloud.ledger.publish import trusted_checkpoints
from kcloud.settings import Settings
from kcloud.supervisor import Child, ChildSpec
from streams.launcher import settings_env

__all__ = ["DemoReport", "run_demo"]

NODE_PREFIX = "demo"


@dataclass(frozen=True)
class DemoReport:
    """What a demo run delivered and stored."""

    snapshots_delivered: int
    snapshots_stored: int
    samples_stored: int
    deadlettered: int
    ledger_rows: int
    ledger_ok: bool
    open_alerts: int
    seconds: float


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class _Status:
    stored: int = 0
    deadlettered: int = 0
    snapshots: int = 0
    lag_s: float | None = None
    statuses: str = ""
    open_alerts: int = 0


class _Demo:
    def __init__(self, settings: Settings, nodes: int, interval_s: float, echo: Callable[[str], None]) -> None:
        self.settings = settings
        self.nodes = nodes
        self.interval_s = interval_s
        self.echo = echo
        self.url = settings.effective_database_url
        logs = settings.state_dir.resolve() / "logs"
        env = settings_env(settings)
        py = [sys.executable, "-m", "kcloud.cli"]
        self.worker_port = _free_port(settings.worker_web_port)
        self.gateway_port = _free_port(settings.gateway_port)
        self.metrics_port = _free_port(9464)
        self.worker = Child(
            ChildSpec(
                "stream worker",
                [*py, "streams", "worker", "--web-port", str(self.worker_port)],
                env,
                logs / "demo-worker.log",
                ready=lambda: bool(self._counters()),
            )
        )
        self.gateway = Child(
            ChildSpec(
                "gateway",
                [*py, "gateway", "--port", str(self.gateway_port)],
                env,
                logs / "demo-gateway.log",
                ready=lambda: bool(_get(f"http://{settings.gateway_host}:{self.gateway_port}/healthz")),
            )
        )
        self.collector = Child(
            ChildSpec(
                "collector",
                [
                    *py,
                    "collect",
                    "sim",
                    "--nodes",
                    str(nodes),
                    "--seed",
                    "7",
                    "--node-prefix",
                    NODE_PREFIX,
                    "--interval",
                    str(interval_s),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                env,
                logs / "demo-collector.log",
                ready=lambda: bool(_get(f"http://127.0.0.1:{self.metrics_port}/metrics")),
            )
        )

    def _counters(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(_get(f"http://127.0.0.1:{self.worker_port}/counters/"))
        return loaded

    def delivered(self) -> int:
        text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        return int(_metric(text, "kcloud_collector_delivered_total"))

    def status(self) -> _Status:
        st = _Status()
        with contextlib.suppress(OSError, ValueError):
            c = self._counters()
            st.stored = int(str(c.get("samples_stored", 0)))
            st.deadlettered = int(str(c.get("deadlettered", 0)))
            st.snapshots = int(str(c.get("snapshots_valid", 0)))
        with psycopg.connect(self.url) as conn:
            lag = conn.execute(
                "SELECT extract(epoch FROM now() - max(last_seen)) FROM nodes WHERE node_id LIKE %s",
                (NODE_PREFIX + "-%",),
            ).fetchone()
            st.lag_s = float(lag[0]) if lag and lag[0] is not None else None
            rows = conn.execute("SELECT status, count(*) FROM devices GROUP BY status ORDER BY status").fetchall()
            st.statuses = " ".join(f"{s}={n}" for s, n in rows) or "none yet"
            alerts = conn.execute("SELECT count(*) FROM alerts WHERE resolved_at IS NULL").fetchone()
            st.open_alerts = int(alerts[0]) if alerts else 0
        return st

    def stored_since(self, since: datetime) -> tuple[int, int]:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (d.node_id, s.time)) FROM device_samples s "
                "JOIN devices d USING (device_id) WHERE d.node_id LIKE %s AND s.time >= %s",
                (NODE_PREFIX + "-%", since),
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


def run_demo(
    settings: Settings,
    *,
    nodes: int = 50,
    interval_s: float = 10.0,
    duration_s: float | None = None,
    with_gateway: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Run the supervised demo until `duration_s` passes (None: until Ctrl-C) and return its totals."""
    t0 = time.monotonic()
    for line in stack.up(settings):
        echo(line)
    report = migrate(settings.migration_database_url, settings)
    echo(f"database: {report.mode.mode} ({len(report.applied)} migration(s) applied now)")
    KafkaService(settings).ensure_topics()
    demo = _Demo(settings, nodes, interval_s, echo)
    since = datetime.now(UTC).replace(microsecond=0)
    children = [demo.worker, *([demo.gateway] if with_gateway else []), demo.collector]
    started: list[Child] = []
    delivered = dead = 0
    try:
        for child in children:
            echo(f"starting {child.spec.name} (log {child.spec.log_path})")
            started.append(child.start())
        producer = SnapshotProducer(settings)
        producer.send_raw(b'{"schema": "kcloud.telemetry/1", "node": "truncated', key=b"demo-malformed")
        producer.flush()
        producer.close()
        echo(
            f"running: {nodes} simulated nodes every {interval_s:g}s"
            + (f" for {duration_s:g}s" if duration_s else "; Ctrl-C stops")
            + (f"; gateway on http://{settings.gateway_host}:{demo.gateway_port}" if with_gateway else "")
        )
        _watch(demo, started, duration_s, echo)
    except KeyboardInterrupt:
        echo("stopping (Ctrl-C)")
    finally:
        with contextlib.suppress(OSError, ValueError):
            delivered = demo.delivered()
        for child in reversed(started):
            if child is demo.collector:
                child.stop()
        if demo.worker.alive:
            _drain(demo, since, delivered, echo)
            dead = _dead_letters(demo)
        for child in reversed(started):
            child.stop()
    samples, snapshots = demo.stored_since(since)
    with psycopg.connect(settings.effective_database_url) as conn:
        # verified as an auditor would: signatures under the trusted key, the stored checkpoints
        trusted = trusted_key(settings)
        checkpoints, _, _ = trusted_checkpoints(settings, [], trusted, kafka=False)
        ledger = verify_ledger(conn, trusted_key=trusted, checkpoints=checkpoints)
        alerts = conn.execute("SELECT count(*) FROM alerts WHERE resolved_at IS NULL").fetchone()
    return DemoReport(
        delivered,
        snapshots,
        samples,
        dead,
        ledger.rows,
        ledger.ok and (ledger.signatures_checked or ledger.rows == ledger.form1_rows),
        int(alerts[0]) if alerts else 0,
        time.monotonic() - t0,
    )


def _dead_letters(demo: _Demo) -> int:
    try:
        return int(str(demo._counters().get("deadlettered", 0)))
    except (OSError, ValueError):
        return 0


def _watch(demo: _Demo, children: list[Child], duration_s: float | None, echo: Callable[[str], None]) -> None:
    end = None if duration_s is None else time.monotonic() + duration_s
    window: deque[tuple[float, int]] = deque(maxlen=6)  # the rate over the last ~15 s
    tty = sys.stdout.isatty()
    while end is None or time.monotonic() < end:
        time.sleep(min(3.0, max(0.1, (end - time.monotonic()) if end else 3.0)))
        for child in children:
            note = child.check()
            if note:
                echo(note)
        st = demo.status()
        window.append((time.monotonic(), st.stored))
        (t_a, n_a), (t_b, n_b) = window[0], window[-1]
        rate = (n_b - n_a) / (t_b - t_a) if t_b > t_a and n_b >= n_a else 0.0
        lag = f"{st.lag_s:.1f}s" if st.lag_s is not None else "-"
        line = (
            f"{st.stored:>9} samples stored ({rate:,.0f}/s)  lag {lag}  devices: {st.statuses}  "
            f"open alerts {st.open_alerts}  dead letters {st.deadlettered}"
        )
        if tty:
            sys.stdout.write("\r\x1b[2K" + line)
            sys.stdout.flush()
        else:
            echo(line)
    if tty:
        sys.stdout.write("\n")


def _drain(demo: _Demo, since: datetime, delivered: int, echo: Callable[[str], None], timeout_s: float = 60.0) -> None:
    """Wait until the worker has stored every snapshot the collector delivered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, snapshots = demo.stored_since(since)
        if snapshots >= delivered:
            return
        time.sleep(0.5)
    raise InfraError(
        f"demo: the collector delivered {delivered} snapshots but only {demo.stored_since(since)[1]} were stored "
        f"within {timeout_s:.0f}s; see {demo.worker.spec.log_path}"
    )
