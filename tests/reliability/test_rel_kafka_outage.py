"""The Kafka broker stopped for 20 s under live traffic: a collector agent (`kcloud collect sim`) spools on
disk, the vendor gateway (`kcloud gateway`) answers 503 with Retry-After, and once the broker is back every
snapshot arrives exactly once, on the topic and in the database. And a spool that fills during an
outage drops its oldest records, counted in the agent's metrics and its log, and delivers the rest; so
does a spool whose disk (a really small tmpfs or ext4, mounted by the test as root) is full or turns
read-only: the agent keeps its pid and samples every interval, and what it counts as dropped is exactly
what never reached the topic.

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
from collections.abc import Callable, Iterator
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
from small_disk import SmallDisk

from collectors.simulator import SimulatedFleet
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

    def __init__(self, settings: Settings, tmp: Path, *args: str, spool: Path | None = None) -> None:
        self.spool = spool or tmp / "spool"
        self.port = free_port()
        self.log = tmp / "agent.log"
        cmd = [str(ROOT / ".venv" / "bin" / "kcloud"), "collect", "sim", "--spool-dir", str(self.spool)]
        cmd += ["--metrics-port", str(self.port), "--kafka-timeout", "3", *args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT)

    def metric(self, name: str) -> float:
        return _metric(self.port, f"kcloud_collector_{name}")

    def labelled(self, name: str, **labels: str) -> float:
        """A labelled sample, e.g. `labelled("spool_write_errors_total", error="ENOSPC")` (0 while absent)."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return max(_metric(self.port, re.escape(f"kcloud_collector_{name}{{{inner}}}")), 0.0)

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


# -- the disk under the spool full or failing ------------------------------------------------------------
DISK_NODES = 10
DISK_INTERVAL_S = 0.2
DISK_WINDOW_S = 300.0  # a run is far shorter: the agent's 30 s start, the fault, 90 s drain at most
_SUMMARY = re.compile(
    r"stopped after (\d+) tick\(s\): (\d+) snapshot\(s\) sampled \+ (\d+) found in the spool at start = "
    r"(\d+) delivered \+ (\d+) left in the spool \+ (\d+) dropped"
)


@dataclass(frozen=True)
class DiskFaultRun:
    """What one agent did with its spool on a small, then full or failed, filesystem through a broker outage."""

    exit_code: int
    ticks: int
    sampled: int  # as the agent counted them
    expected: int  # as the simulator says they were sampled
    delivered: int
    left: int
    dropped: int
    dropped_log: list[int]
    per_node: dict[str, list[int]]
    lost: dict[str, list[int]]
    ticks_per_s: list[int]  # ticks in each second of the fault
    log: str
    phases: dict[str, object]

    @property
    def on_topic(self) -> int:
        return sum(len(seqs) for seqs in self.per_node.values())

    @property
    def twice(self) -> int:
        return sum(len(seqs) - len(set(seqs)) for seqs in self.per_node.values())

    @property
    def missing(self) -> int:
        return sum(len(gap) for gap in self.lost.values())


def _observe(agent: Agent, seconds: float) -> list[int]:
    """Ticks of the agent in each second for `seconds` (the agent must stay alive throughout)."""
    counts: list[int] = []
    before = agent.labelled("ticks_total", source="sim", outcome="ok")
    for _ in range(round(seconds)):
        time.sleep(1.0)
        assert agent.proc.poll() is None, f"the agent exited:\n{agent.log.read_text()[-3000:]}"
        now = agent.labelled("ticks_total", source="sim", outcome="ok")
        counts.append(int(now - before))
        before = now
    return counts


def _disk_fault_run(
    own_broker: KafkaService, tmp: Path, spool: Path, fault: Callable[[Agent], tuple[list[int], dict[str, object]]]
) -> DiskFaultRun:
    """Run `kcloud collect sim` with its spool on `spool`; `fault` stops the broker and breaks the disk
    (returning the ticks per second it saw and its figures); then the broker is back, the spool drained,
    the agent stopped, and the topic read."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    settings = own_broker.settings.model_copy(update={"topic_namespace": namespace})
    if own_broker.running_pid() is None:
        own_broker.up()
    KafkaService(settings).ensure_topics()
    seed = _steady_seed(DISK_WINDOW_S)
    args = [
        "--nodes",
        str(DISK_NODES),
        "--seed",
        str(seed),
        "--interval",
        str(DISK_INTERVAL_S),
        "--spool-max-mb",
        "1",
    ]
    agent = Agent(settings, tmp, *args, spool=spool)
    pid = agent.proc.pid
    try:
        agent.wait("first deliveries", lambda: agent.metric("delivered_total") >= 3 * DISK_NODES, 30)
        ticks_per_s, phases = fault(agent)
        if own_broker.running_pid() is None:
            own_broker.up()
        agent.wait("the spool to drain", lambda: agent.metric("spool_depth_records") == 0, 90)
        assert agent.proc.pid == pid and agent.proc.poll() is None
    finally:
        if own_broker.running_pid() is None:
            own_broker.up()
        code = agent.stop()
    log = agent.log.read_text()
    summary = _SUMMARY.findall(log)
    assert summary, f"no summary line at exit:\n{log[-3000:]}"
    ticks, sampled, at_start, delivered, left, dropped = (int(n) for n in summary[-1])
    assert at_start == 0
    reported = [int(n) for n in re.findall(r"dropped the \d+ oldest undelivered record\(s\), (\d+) since start", log)]
    records = _topic_times(settings, sampled - dropped)
    per_node: dict[str, list[int]] = defaultdict(list)
    for node_id, seq, _ in records:
        per_node[node_id].append(seq)
    expected = _sampled(seed, records, ticks)
    lost = {node: sorted(set(seqs) - set(per_node.get(node, []))) for node, seqs in expected.items()}
    assert all(set(per_node[node]) <= set(expected.get(node, [])) for node in per_node), "a snapshot never sampled"
    return DiskFaultRun(
        code,
        ticks,
        sampled,
        sum(len(seqs) for seqs in expected.values()),
        delivered,
        left,
        dropped,
        reported,
        dict(per_node),
        lost,
        ticks_per_s,
        log,
        phases,
    )


def _topic_times(settings: Settings, expect: int) -> list[tuple[str, int, datetime]]:
    """(node_id, seq, collected_at) of every record on the telemetry topic (until `expect` or 20 s idle)."""
    consumer = KafkaConsumer(
        settings.topic(TELEMETRY),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    got: list[tuple[str, int, datetime]] = []
    deadline = time.monotonic() + 20
    try:
        while len(got) < expect and time.monotonic() < deadline:
            for record in consumer:
                snap = parse_snapshot(record.value)
                got.append((snap.node.node_id, snap.seq, snap.collected_at))
    finally:
        consumer.close()
    return got


def _steady_seed(window_s: float) -> int:
    """A simulator seed whose fleet keeps the same nodes online for the next `window_s` seconds (its offline
    spells last 5 minutes or more, so a set that is the same at every second is the same throughout): then
    every node online sends a snapshot in every tick, and one missing from the topic was lost."""
    now = time.time()
    points = [datetime.fromtimestamp(now + t, UTC) for t in range(-5, int(window_s) + 1)]
    for seed in range(1, 1000):
        fleet = SimulatedFleet(DISK_NODES, seed=seed)
        if len({fleet.conditions(at).offline for at in points}) == 1:
            return seed
    pytest.fail(f"no simulator seed keeps its {DISK_NODES} nodes steady for {window_s:.0f} s")


def _sampled(seed: int, records: list[tuple[str, int, datetime]], ticks: int) -> dict[str, list[int]]:
    """Every (node, seq) the agent sampled, from the simulator itself: each tick, every node online."""
    fleet = SimulatedFleet(DISK_NODES, seed=seed)
    assert records, "nothing reached the topic"
    last = max(at for _, _, at in records)
    assert last.timestamp() < time.time(), "a snapshot from the future"
    offline = fleet.conditions(last).offline
    return {fleet.node_id(n): list(range(ticks)) for n in range(DISK_NODES) if n not in offline}


def _figures(run: DiskFaultRun) -> dict[str, object]:
    return {
        **run.phases,
        "ticks_per_s_during_fault": run.ticks_per_s,
        "ticks": run.ticks,
        "snapshots_sampled": run.sampled,
        "nodes_online": len(run.per_node),
        "delivered": run.delivered,
        "left_in_spool": run.left,
        "dropped": run.dropped,
        "dropped_reported_in_log": run.dropped_log[-1] if run.dropped_log else 0,
        "records_on_topic": run.on_topic,
        "records_on_topic_twice": run.twice,
        "records_missing_from_topic": run.missing,
    }


def _assert_exact(run: DiskFaultRun) -> None:
    """The agent lived through it and every snapshot is accounted for, exactly."""
    assert run.exit_code == 0, run.log[-3000:]
    assert "Traceback" not in run.log, run.log[-3000:]
    assert run.per_node and set(run.per_node) <= set(run.lost)
    assert run.sampled == run.expected, f"the agent counted {run.sampled} sampled, the simulator says {run.expected}"
    assert run.sampled == run.delivered + run.left + run.dropped and run.left == 0
    assert run.twice == 0, "a snapshot arrived twice"
    for node, seqs in run.per_node.items():
        assert seqs == sorted(seqs), f"{node}: out of order"
    assert run.on_topic == run.delivered
    assert run.dropped == run.missing, f"{run.dropped} counted as dropped, {run.missing} missing from the topic"
    assert (run.dropped_log[-1] if run.dropped_log else 0) == run.dropped
    # sampling went on every interval: each second of the fault saw ticks, at least half of those due
    assert all(n >= 1 for n in run.ticks_per_s), run.ticks_per_s
    assert sum(run.ticks_per_s) >= 0.5 * len(run.ticks_per_s) / DISK_INTERVAL_S, run.ticks_per_s


def test_a_full_disk_under_the_spool_drops_the_oldest_and_counts_them_exactly(
    own_broker: KafkaService, small_disk: Callable[..., SmallDisk], tmp_path: Path
) -> None:
    """The broker goes away, the spool writes to a 256 KiB tmpfs, then another file fills that disk: the
    spool drops its oldest records on it to make room (the broker comes back with the disk still full)."""
    disk = small_disk("tmpfs", 256)

    def fault(agent: Agent) -> tuple[list[int], dict[str, object]]:
        own_broker.down()
        agent.wait("snapshots on disk", lambda: agent.metric("spool_bytes") > 0, 30)
        filler = disk.fill()
        ticks = _observe(agent, 6)
        errors = agent.labelled("spool_write_errors_total", error="ENOSPC")
        dropped = agent.metric("spool_dropped_total")
        memory = agent.metric("spool_memory_bytes")
        return ticks, {
            "disk_kib": 256,
            "filler_bytes": filler,
            "enospc_errors": errors,
            "dropped_full": dropped,
            "memory_bytes_full": memory,
        }

    run = _disk_fault_run(own_broker, tmp_path, disk.path / "spool", fault)
    record_figures("spool_disk_full", _figures(run))
    assert run.phases["enospc_errors"] > 0  # type: ignore[operator]
    assert run.phases["dropped_full"] > 0  # type: ignore[operator]
    assert "the disk is full (No space left on device)" in run.log
    _assert_exact(run)
    for node, gap in run.lost.items():  # the oldest of the outage went; the first ticks and the newest arrived
        assert gap and gap[0] > 0 and gap[-1] < max(run.per_node[node]), f"{node}: lost {gap[:3]}..{gap[-3:]}"


def test_a_disk_full_before_the_outage_holds_snapshots_in_memory_then_writes_to_disk_again(
    own_broker: KafkaService, small_disk: Callable[..., SmallDisk], tmp_path: Path
) -> None:
    """The 256 KiB disk is full before the broker goes away: nothing can be spooled on it, so snapshots are
    held in memory (1 MiB, oldest dropped beyond); then the space comes back and the spool writes to disk."""
    disk = small_disk("tmpfs", 256)

    def fault(agent: Agent) -> tuple[list[int], dict[str, object]]:
        filler = disk.fill()
        delivered = agent.metric("delivered_total")
        ticks = _observe(agent, 1)
        assert agent.metric("delivered_total") > delivered  # delivery needs no disk
        own_broker.down()
        agent.wait("snapshots held in memory", lambda: agent.metric("spool_memory_bytes") > 0, 30)
        ticks += _observe(agent, 7)
        memory = agent.metric("spool_memory_bytes")
        dropped = agent.metric("spool_dropped_total")
        on_disk = agent.metric("spool_bytes")
        disk.free()
        agent.wait("the spool on disk again", lambda: agent.metric("spool_bytes") > 0, 30)
        ticks += _observe(agent, 1)
        return ticks, {
            "disk_kib": 256,
            "filler_bytes": filler,
            "enospc_errors": agent.labelled("spool_write_errors_total", error="ENOSPC"),
            "memory_bytes_full": memory,
            "spool_bytes_full": on_disk,
            "dropped_full": dropped,
        }

    run = _disk_fault_run(own_broker, tmp_path, disk.path / "spool", fault)
    record_figures("spool_disk_full_memory", _figures(run))
    assert run.phases["spool_bytes_full"] == 0
    assert run.phases["memory_bytes_full"] > 0  # type: ignore[operator]
    assert run.phases["dropped_full"] > 0  # type: ignore[operator]  # the memory bound was reached
    assert "new records are held in memory" in run.log and "the memory buffer is full" in run.log
    assert "writing to the disk again" in run.log
    _assert_exact(run)


def test_a_disk_turned_read_only_under_the_spool_loses_nothing_it_holds_and_counts_the_rest(
    own_broker: KafkaService, small_disk: Callable[..., SmallDisk], tmp_path: Path
) -> None:
    """ext4 under the spool fails (as on an I/O error, it turns read-only at once) during the outage: what
    is on it is still read back and delivered, new snapshots are held in memory, drops counted exactly."""
    disk = small_disk("ext4", 2048)

    def fault(agent: Agent) -> tuple[list[int], dict[str, object]]:
        own_broker.down()
        agent.wait("snapshots on disk", lambda: agent.metric("spool_depth_records") >= 5 * DISK_NODES, 30)
        disk.fail_read_only()
        on_disk = agent.metric("spool_depth_records")
        ticks = _observe(agent, 7)
        return ticks, {
            "disk_kib": 2048,
            "depth_when_read_only": on_disk,
            "erofs_errors": agent.labelled("spool_write_errors_total", error="EROFS"),
            "memory_bytes_full": agent.metric("spool_memory_bytes"),
            "dropped_full": agent.metric("spool_dropped_total"),
        }

    run = _disk_fault_run(own_broker, tmp_path, disk.path / "spool", fault)
    record_figures("spool_disk_read_only", _figures(run))
    assert run.phases["erofs_errors"] > 0  # type: ignore[operator]
    assert run.phases["memory_bytes_full"] > 0  # type: ignore[operator]
    assert "cannot write to the disk (Read-only file system)" in run.log
    assert "seq file" in run.log and "cannot be written (Read-only file system)" in run.log
    _assert_exact(run)
