"""`kcloud demo`: the whole service on the embedded default, supervised in one foreground process.

Brings the local Kafka and PostgreSQL up, applies the migrations, then runs and watches a stream worker,
the vendor gateway and a simulated-fleet collector (live: one snapshot per node per interval, stamped
with the wall clock), plus one malformed message to show the dead-letter path. A status line every few
seconds shows samples/s stored, ingest lag, devices by status and open alerts. A child that dies is
restarted (a few times at most), said on a line of its own; so is the restarted worker catching up (its
consumer lag back within one round of the fleet's snapshots). Ctrl-C, or the end of `--duration`, stops
the collector first, waits until the worker has stored what was delivered, then stops the rest and prints
the totals, which count across restarts: samples from the database, dead letters (distinct records) from
kcloud.deadletter.v1.
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
from kafka import KafkaConsumer, TopicPartition

from collectors.producer import SnapshotProducer
from infra import stack
from infra.errors import InfraError
from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.ledger import trusted_key, verify_ledger
from kcloud.ledger.publish import trusted_checkpoints
from kcloud.settings import Settings
from kcloud.supervisor import Child, ChildSpec
from kcloud.topics import DEADLETTER
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
        py = [sys.executable, "-m", "console.main"]
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

        #: a restarted worker counts from 0 again: what its predecessors had counted, per counter
        self._carried: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def _counters(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(_get(f"http://127.0.0.1:{self.worker_port}/counters/"))
        return loaded

    def totals(self) -> dict[str, int]:
        """The worker's counters summed over its restarts (a counter that went down is a new worker)."""
        c = self._counters()
        out: dict[str, int] = {}
        for name in ("samples_stored", "deadlettered", "snapshots_valid"):
            now = int(str(c.get(name, 0)))
            if now < self._last.get(name, 0):
                self._carried[name] = self._carried.get(name, 0) + self._last[name]
            self._last[name] = now
            out[name] = self._carried.get(name, 0) + now
        return out

    def lag(self) -> int | None:
        """Records the worker has not stored yet, over its partitions (None: its metrics do not answer)."""
        try:
            text = _get(f"http://127.0.0.1:{self.worker_port}/metrics").decode()
        except OSError:
            return None
        if "kcloud_worker_consumer_lag_messages{" not in text:
            return None  # no partition assigned yet: it is still joining its group
        return int(_metric(text, "kcloud_worker_consumer_lag_messages"))

    def delivered(self) -> int:
        text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        return int(_metric(text, "kcloud_collector_delivered_total"))

    def status(self) -> _Status:
        st = _Status()
        with contextlib.suppress(OSError, ValueError):
            c = self.totals()
            st.stored = c["samples_stored"]
            st.deadlettered = c["deadlettered"]
            st.snapshots = c["snapshots_valid"]
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
    letters_from = _deadletter_ends(settings)
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
        worker_url = f"http://127.0.0.1:{demo.worker_port}"
        echo(f"stream worker: {worker_url}/counters/ (JSON) and {worker_url}/metrics (Prometheus)")
        echo(f"collector: http://127.0.0.1:{demo.metrics_port}/metrics (Prometheus); `kcloud status` shows them all")
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
        with contextlib.suppress(Exception):  # Kafka away at the end: the summary says 0
            dead = _dead_letters(settings, letters_from)
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


def _deadletter_ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of each partition of kcloud.deadletter.v1 now."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), client_id="kcloud-demo")
    try:
        topic = settings.topic(DEADLETTER)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends: dict[TopicPartition, int] = consumer.end_offsets(tps) if tps else {}
        return ends
    finally:
        consumer.close()


def _dead_letters(settings: Settings, since: dict[TopicPartition, int]) -> int:
    """The distinct records dead-lettered since the offsets `since`, read from kcloud.deadletter.v1 itself: a
    restarted worker counts from 0 again, and one that replays a batch may dead-letter a record twice."""
    ends = _deadletter_ends(settings)
    wanted = {tp: end for tp, end in ends.items() if end > since.get(tp, 0)}
    if not wanted:
        return 0
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), client_id="kcloud-demo", enable_auto_commit=False
    )
    seen: set[tuple[object, ...]] = set()
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, since.get(tp, 0))
        deadline = time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset < wanted.get(tp, 0):
                        seen.add(_letter_key(record.value))
                if consumer.position(tp) >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
    finally:
        consumer.close()
    return len(seen)


def _letter_key(value: bytes) -> tuple[object, ...]:
    """What makes a dead letter one record: where it was read from (or, without that, its bytes)."""
    try:
        doc = json.loads(value)
    except ValueError:
        return ("unreadable", value)
    if doc.get("offset") is not None:
        return (doc.get("stage"), doc.get("source_topic"), doc.get("partition"), doc.get("offset"))
    return (doc.get("stage"), doc.get("original_b64"), doc.get("key"))


def _watch(demo: _Demo, children: list[Child], duration_s: float | None, echo: Callable[[str], None]) -> None:
    end = None if duration_s is None else time.monotonic() + duration_s
    window: deque[tuple[float, int]] = deque(maxlen=6)  # the rate over the last ~15 s
    tty = sys.stdout.isatty()
    restarted_at: float | None = None  # when the worker was restarted and has not caught up since

    def say(line: str) -> None:
        """A line of its own, never glued to the live status line."""
        if tty:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()
        echo(line)

    while end is None or time.monotonic() < end:
        time.sleep(min(3.0, max(0.1, (end - time.monotonic()) if end else 3.0)))
        for child in children:
            note = child.check()
            if note:
                say(note)
                if child is demo.worker:
                    restarted_at = time.monotonic()
        behind = demo.lag() if restarted_at is not None else None
        if restarted_at is not None and behind is not None and behind <= demo.nodes:  # within one round of input
            say(f"stream worker caught up {time.monotonic() - restarted_at:.0f}s after its restart (lag {behind})")
            restarted_at = None
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
