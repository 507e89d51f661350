"""The Kafka broker stopped for 20 s under live traffic: a collector agent (`kcloud collect sim`) spools on
disk, the vendor gateway (`kcloud gateway`) answers 503 with Retry-After, and once the broker is back every
snapshot arrives exactly once, on the topic and in the database. And a spool that fills during an
outage drops its oldest records, counted in the agent's metrics and its log, and delivers the rest.

The broker here is a dedicated one (ports 19392/19393, state under .kcloud/test-rel-kafka; free ports
when another process holds those), because the tests stop it; the shared test broker is never touched.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from gateway_helpers import GatewayProcess, issue, ndjson, snapshot
from kafka import KafkaConsumer
from pipeline_helpers import scalar, wait_until
from reliability_helpers import ROOT, free_port, record_figures, start_worker

from infra.kafka import KafkaService
from infra.process import port_open
from kcloud.db.migrate import migrate
from kcloud.records import parse_snapshot
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY
from streams.launcher import settings_env

pytestmark = pytest.mark.reliability

OUTAGE_S = 20.0
NODES = 3


@pytest.fixture(scope="module")
def own_broker(kafka_up: KafkaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaService]:
    """A broker of these tests' own, which they may stop and start."""
    overrides: dict[str, object] = {
        "state_dir": ROOT / ".kcloud" / "test-rel-kafka",
        "kafka_bootstrap": "127.0.0.1:19392",
        "kafka_controller_port": 19393,
        "kafka_partitions": 3,
    }
    svc = KafkaService(kafka_up.settings.model_copy(update=overrides))
    if svc.running_pid() is None and (port_open("127.0.0.1", 19392) or port_open("127.0.0.1", 19393)):
        home = tmp_path_factory.mktemp("broker")
        (home / "kafka").mkdir(parents=True)
        (home / "kafka" / "lib").symlink_to(kafka_up.lib)
        overrides |= {
            "state_dir": home,
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
            "kafka_controller_port": free_port(),
        }
        svc = KafkaService(kafka_up.settings.model_copy(update=overrides))
    svc.up()
    try:
        yield svc
    finally:
        svc.down()


@pytest.fixture
def outage_settings(own_broker: KafkaService, test_settings: Settings, in_tmp: Path) -> Settings:
    """A fresh migrated database on the test cluster, the dedicated broker, this test's own topics."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    settings = test_settings.model_copy(
        update={
            "kafka_bootstrap": own_broker.settings.kafka_bootstrap,
            "kafka_controller_port": own_broker.settings.kafka_controller_port,
            "topic_namespace": namespace,
            "app_id": f"rel-{namespace}",
            "kafka_partitions": 3,
            "ingest_batch_seconds": 0.2,
        }
    )
    if own_broker.running_pid() is None:
        own_broker.up()
    migrate(settings.effective_database_url, settings)
    KafkaService(settings).ensure_topics()
    return settings


def _metric(port: int, name: str) -> float:
    try:
        with httpx.Client(timeout=2) as client:
            text = client.get(f"http://127.0.0.1:{port}/metrics").text
    except httpx.HTTPError:
        return -1.0
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


class Agent:
    """`kcloud collect sim` as a child process with its spool, seq file and metrics port."""

    def __init__(self, settings: Settings, tmp: Path, *args: str) -> None:
        self.spool = tmp / "spool"
        self.port = free_port()
        self.log = tmp / "agent.log"
        cmd = [str(ROOT / ".venv" / "bin" / "kcloud"), "collect", "sim", "--spool-dir", str(self.spool)]
        cmd += ["--metrics-port", str(self.port), "--kafka-timeout", "3", *args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT)

    def metric(self, name: str) -> float:
        return _metric(self.port, f"kcloud_collector_{name}")

    def wait(self, what: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the agent exited:\n{self.log.read_text()[-3000:]}"
            if check():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; agent log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def ticks(self) -> int:
        return int((self.spool / "seq").read_text())


@dataclass
class Pusher:
    """A vendor's client: one push every `every_s`, each re-sent after the Retry-After of a 503 until 202."""

    gateway: GatewayProcess
    token: str
    start: datetime
    pushes: int
    every_s: float = 0.5
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)

    def body(self, i: int) -> bytes:
        snap = snapshot(f"gw-{i % 2}", seq=i)
        snap["collected_at"] = (self.start + timedelta(seconds=i)).isoformat()
        return ndjson(snap)

    def run(self) -> None:
        for i in range(self.pushes):
            while True:
                answer = self.gateway.push(self.token, self.body(i))
                self.statuses[answer.status_code] += 1
                if answer.status_code == 202:
                    self.accepted.append(i)
                    break
                if answer.status_code != 503:
                    return  # anything else is a failure the test reports
                self.retry_after.append(int(answer.headers["Retry-After"]))
                time.sleep(min(self.retry_after[-1], 5))
            time.sleep(self.every_s)


def _topic(settings: Settings, expect: int) -> list[tuple[str, int, int]]:
    """(node_id, seq, devices) of every record on the telemetry topic, reading until `expect` or 20 s idle."""
    consumer = KafkaConsumer(
        settings.topic(TELEMETRY),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    got: list[tuple[str, int, int]] = []
    deadline = time.monotonic() + 20
    try:
        while len(got) < expect and time.monotonic() < deadline:
            for record in consumer:
                snap = parse_snapshot(record.value)
                got.append((snap.node.node_id, snap.seq, len(snap.devices)))
    finally:
        consumer.close()
    return got


def test_broker_outage_spools_answers_503_and_delivers_every_sample_once(
    outage_settings: Settings, own_broker: KafkaService, tmp_path: Path
) -> None:
    settings = outage_settings
    gateway = GatewayProcess(settings, tmp_path / "gateway.log").start()
    pusher = Pusher(gateway, issue(settings, "furiosa"), datetime.now(UTC) - timedelta(hours=1), pushes=90)
    agent = Agent(settings, tmp_path, "--nodes", str(NODES), "--seed", "5", "--interval", "0.5")
    thread = threading.Thread(target=pusher.run, name="vendor-pusher", daemon=True)
    try:
        agent.wait("first deliveries", lambda: agent.metric("delivered_total") >= 3 * NODES, 30)
        thread.start()
        wait_until(lambda: len(pusher.accepted) >= 3, 30, "first pushes accepted")

        own_broker.down()
        stopped = time.monotonic()
        agent.wait("the agent to spool", lambda: agent.metric("spool_depth_records") >= 10 * NODES, 30)
        wait_until(lambda: pusher.statuses[503] >= 1, 30, "a push refused with 503")
        health = httpx.get(f"{gateway.url}/healthz", timeout=30)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        spooled = agent.metric("spool_depth_records")
        own_broker.up()
        outage = time.monotonic() - stopped

        agent.wait("the spool to drain", lambda: agent.metric("spool_depth_records") == 0, 60)
        thread.join(timeout=90)
        assert not thread.is_alive(), f"the vendor's pushes did not finish: {pusher.statuses}"
    finally:
        code = agent.stop()
        gateway.stop()
    assert code == 0, agent.log.read_text()[-3000:]
    ticks = agent.ticks()

    on_topic = _topic(settings, ticks * NODES + pusher.pushes)
    per_node: dict[str, list[int]] = defaultdict(list)
    for node_id, seq, _ in on_topic:
        per_node[node_id].append(seq)
    sim_nodes = sorted(n for n in per_node if not n.startswith("gw-"))
    expected_samples = sum(devices for _, _, devices in on_topic)

    worker = start_worker(settings, tmp_path, "after-outage")
    try:
        url = settings.effective_database_url
        wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") >= expected_samples, 60, "all stored")
    finally:
        worker.stop()
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT (device_id, time)) FROM device_samples").fetchone()
    assert stored is not None

    record_figures(
        "kafka_outage",
        {
            "outage_s": round(outage, 1),
            "collector_ticks": ticks,
            "collector_snapshots": ticks * NODES,
            "spool_depth_at_restart": spooled,
            "gateway_pushes": pusher.pushes,
            "gateway_status_codes": dict(pusher.statuses),
            "retry_after_s": sorted(set(pusher.retry_after)),
            "records_on_topic": len(on_topic),
            "samples_stored": stored[0],
            "samples_distinct": stored[1],
            "samples_expected": expected_samples,
        },
    )
    assert health.status_code == 503 and health.json()["kafka"].startswith("unavailable"), health.text
    assert spooled >= 10 * NODES
    assert set(pusher.statuses) <= {202, 503}, f"the gateway answered {dict(pusher.statuses)}"
    assert pusher.retry_after and min(pusher.retry_after) >= 1
    assert len(sim_nodes) == NODES
    for node in sim_nodes:
        assert per_node[node] == list(range(ticks)), f"{node}: not every seq exactly once, in order"
    gateway_seqs = sorted(per_node["gw-0"] + per_node["gw-1"])
    assert gateway_seqs == list(range(pusher.pushes)), "a push was lost or doubled on the topic"
    assert stored == (expected_samples, expected_samples)
    assert expected_samples == ticks * NODES * 8 + pusher.pushes * 2


@dataclass(frozen=True)
class SpoolRun:
    """What one agent with a 1 MiB spool did through a broker outage."""

    snapshots: int
    dropped_metric: float
    dropped_log: list[int]
    per_node: dict[str, list[int]]
    lost: dict[str, list[int]]


@pytest.fixture(scope="module")
def spool_run(own_broker: KafkaService, tmp_path_factory: pytest.TempPathFactory) -> SpoolRun:
    """Twenty simulated nodes at 10 ticks/s into a 1 MiB spool while the broker is away (until at least
    100 snapshots were dropped), then the broker back and the spool drained; and what reached the topic."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    settings = own_broker.settings.model_copy(update={"topic_namespace": namespace})
    if own_broker.running_pid() is None:
        own_broker.up()
    KafkaService(settings).ensure_topics()
    nodes = 20
    agent = Agent(
        settings,
        tmp_path_factory.mktemp("spool"),
        "--nodes",
        str(nodes),
        "--seed",
        "9",
        "--interval",
        "0.1",
        "--spool-max-mb",
        "1",
    )
    try:
        agent.wait("first deliveries", lambda: agent.metric("delivered_total") >= 3 * nodes, 30)
        own_broker.down()
        agent.wait("the spool to overflow", lambda: agent.metric("spool_dropped_total") >= 5 * nodes, 60)
        own_broker.up()
        agent.wait("the spool to drain", lambda: agent.metric("spool_depth_records") == 0, 60)
        dropped = agent.metric("spool_dropped_total")
    finally:
        code = agent.stop()
    assert code == 0, agent.log.read_text()[-3000:]
    ticks = agent.ticks()
    log = agent.log.read_text()
    reported = [int(n) for n in re.findall(r"dropped the \d+ oldest undelivered record\(s\), (\d+) since start", log)]
    per_node: dict[str, list[int]] = defaultdict(list)
    for node_id, seq, _ in _topic(settings, ticks * nodes - int(dropped)):
        per_node[node_id].append(seq)
    lost = {node: sorted(set(range(ticks)) - set(seqs)) for node, seqs in per_node.items()}
    run = SpoolRun(ticks * nodes, dropped, reported, dict(per_node), lost)
    record_figures(
        "spool_full",
        {
            "collector_snapshots": run.snapshots,
            "spool_dropped_total": dropped,
            "dropped_reported_in_log": reported[-1] if reported else None,
            "records_on_topic": sum(len(seqs) for seqs in per_node.values()),
            "records_on_topic_twice": sum(len(seqs) - len(set(seqs)) for seqs in per_node.values()),
            "records_lost": sum(len(gap) for gap in lost.values()),
            "lost_seq_range": [min(g[0] for g in lost.values() if g), max(g[-1] for g in lost.values() if g)]
            if any(lost.values())
            else [],
        },
    )
    return run


def test_a_full_spool_drops_its_oldest_records_counted_in_metrics_and_log(spool_run: SpoolRun) -> None:
    assert len(spool_run.per_node) == 20
    assert spool_run.dropped_log and spool_run.dropped_log[-1] == spool_run.dropped_metric, (
        f"log says {spool_run.dropped_log[-1:]} dropped, metrics {spool_run.dropped_metric}"
    )
    for node, seqs in spool_run.per_node.items():
        assert seqs == sorted(set(seqs)), f"{node}: a snapshot arrived twice or out of order"
        gap = spool_run.lost[node]
        # the oldest of the outage went: the first ticks arrived, and so did every tick after the lost ones
        assert gap and gap[0] > 0 and gap[-1] < max(seqs), f"{node}: lost {gap[:3]}..{gap[-3:]}"


def test_the_dropped_count_equals_the_snapshots_that_never_arrived(spool_run: SpoolRun) -> None:
    lost = sum(len(gap) for gap in spool_run.lost.values())
    survivors = {node: sorted(set(range(gap[0], gap[-1] + 1)) - set(gap)) for node, gap in spool_run.lost.items()}
    assert spool_run.dropped_metric == lost, (
        f"{spool_run.dropped_metric:.0f} counted as dropped, {lost} lost; counted as dropped yet delivered: "
        f"{ {node: seqs for node, seqs in survivors.items() if seqs} }"
    )
