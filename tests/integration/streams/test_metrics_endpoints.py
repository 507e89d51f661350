"""Every component's `/metrics` is valid Prometheus text, and carries exactly the metrics README.md lists:
a real stream worker, vendor gateway and simulated-fleet collector on the test stack, fed a fleet, a
vendor push and a malformed record."""

from __future__ import annotations

import json
import re
import socket
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_helpers import scalar, wait_until, worker_settings
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from collectors.producer import SnapshotProducer
from console.main import app
from dashboards.pipeline import PIPELINE, metric_names
from gateway.registry import create_token
from infra.kafka import KafkaService
from kcloud.db.connect import connect
from kcloud.settings import Settings
from kcloud.supervisor import Child, ChildSpec
from streams.launcher import WorkerProcess, settings_env

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
NODES = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def documented(prefix: str) -> set[str]:
    """The metric names of `prefix` that README.md lists (as Prometheus exposes them: counters with `_total`)."""
    return set(re.findall(rf"`({prefix}_[a-z_]+)", README.read_text()))


def scrape(url: str) -> dict[str, set[str]]:
    """Family name -> its sample names, from `url` parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers["Content-Type"]
        text = resp.read().decode()
    return {fam.name: {s.name for s in fam.samples} | {fam.name} for fam in text_string_to_metric_families(text)}


def assert_documented_both_ways(families: dict[str, set[str]], prefix: str) -> None:
    names = documented(prefix)
    assert names, f"README.md lists no {prefix}_* metric"
    exposed = set().union(*families.values())
    # a labelled counter nothing has counted yet is served as its HELP and TYPE lines only: present
    missing = sorted(n for n in names if n not in exposed and n.removesuffix("_total") not in families)
    assert not missing, f"documented in README.md but not served: {missing}"
    # prometheus_client adds a `<name>_created` series (the start time) beside each counter and histogram
    bases = {f.removesuffix("_created") for f in families}
    undocumented = sorted(f for f in bases if f.startswith(prefix) and not ({f, f + "_total"} & names))
    assert not undocumented, f"served but not documented in README.md: {undocumented}"


def samples(url: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            for s in fam.samples:
                out[(("__name__", s.name), *sorted(s.labels.items()))] = s.value
    return out


def value(url: str, sample: str, **labels: str) -> float:
    family = re.sub(r"_(total|count|sum|bucket)$", "", sample)
    key = (("__name__", sample), *sorted(labels.items()))
    return samples(url, family).get(key, 0.0)


@dataclass
class Stack:
    """The running components and their URLs."""

    settings: Settings
    worker: WorkerProcess
    collector: Child
    gateway_url: str
    collector_metrics: str

    @property
    def worker_metrics(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker_web_port}/metrics"


@pytest.fixture
def stack(test_settings: Settings, kafka_up: KafkaService, tmp_path: Path) -> Iterator[Stack]:
    """A worker, a gateway and a collector of 3 simulated nodes, on the test stack."""
    settings = worker_settings(test_settings, app_prefix="metrics", batch_size=50)
    worker = WorkerProcess(settings, tmp_path / "worker.log", web_port=_free_port()).start()
    env = settings_env(worker.settings)
    py = [sys.executable, "-m", "console.main"]
    gw_port, agent_port = _free_port(), _free_port()
    gateway = Child(
        ChildSpec(
            "gateway",
            [*py, "gateway", "--host", "127.0.0.1", "--port", str(gw_port)],
            env,
            tmp_path / "gateway.log",
            ready=lambda: bool(_get(f"http://127.0.0.1:{gw_port}/healthz")),
        )
    )
    collector = Child(
        ChildSpec(
            "collector",
            [
                *py,
                *("collect", "sim", "--nodes", str(NODES), "--interval", "1", "--node-prefix", "selfmetrics"),
                *("--metrics-port", str(agent_port), "--spool-dir", str(tmp_path / "spool")),
            ],
            env,
            tmp_path / "collector.log",
            ready=lambda: bool(_get(f"http://127.0.0.1:{agent_port}/metrics")),
        )
    )
    started: list[Child] = []
    try:
        started.append(gateway.start())
        started.append(collector.start())
        yield Stack(
            worker.settings, worker, collector, f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{agent_port}/metrics"
        )
    finally:
        for child in reversed(started):
            child.stop()
        worker.stop()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: bytes = resp.read()
        return body


def _push(stack: Stack) -> None:
    with connect(stack.settings.effective_database_url) as conn:
        token = create_token(conn, "furiosa", role="vendor", label="self-metrics test").text
    snap = {
        "schema": "kcloud.telemetry/1",
        "node": {"node_id": "rngd-self", "site_id": "site-gw", "hostname": "rngd-self.example"},
        "source": "push:furiosa",
        "collected_at": datetime.now(UTC).isoformat(),
        "seq": 1,
        "devices": [{"device_uuid": "furiosa-rngd-self-0", "vendor": "furiosa", "kind": "npu", "model": "synthetic"}],
    }
    req = urllib.request.Request(
        f"{stack.gateway_url}/v1/telemetry",
        data=json.dumps(snap).encode() + b"\n",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202


def _lags(url: str) -> dict[int, float]:
    return {int(dict(k)["partition"]): v for k, v in samples(url, "kcloud_worker_consumer_lag_messages").items()}


def test_every_component_serves_the_metrics_readme_lists(stack: Stack) -> None:
    _push(stack)
    producer = SnapshotProducer(stack.settings)
    producer.send_raw(b'{"schema": "kcloud.telemetry/1", "node": "truncated', key=b"selfmetrics-bad")
    producer.flush()
    producer.close()
    worker, url = stack.worker_metrics, stack.settings.effective_database_url
    wait_until(lambda: value(worker, "kcloud_worker_dead_letters_total", reason="invalid_json") == 1, 60, "dead letter")
    wait_until(lambda: scalar(url, "SELECT count(*) FROM nodes") == NODES + 1, 60, "the fleet and the pushed node")

    served: dict[str, set[str]] = {}
    for name, metrics_url, prefix in (
        ("worker", worker, "kcloud_worker"),
        ("gateway", stack.gateway_url + "/metrics", "kcloud_gateway"),
        ("collector", stack.collector_metrics, "kcloud_collector"),
    ):
        families = scrape(metrics_url)
        assert families, f"{name}: nothing parsed from {metrics_url}"
        assert_documented_both_ways(families, prefix)
        served.update(families)

    # every series the pipeline dashboard queries is one these components really serve
    series = set().union(*served.values())
    for panel in PIPELINE.panels:
        for metric in metric_names(panel):
            assert metric in series or metric.removesuffix("_total") in served, f"{panel.title}: {metric}"

    assert value(stack.gateway_url + "/metrics", "kcloud_gateway_snapshots_total", vendor="furiosa", outcome="accepted")
    assert value(stack.collector_metrics, "kcloud_collector_delivered_total") > 0
    assert value(worker, "kcloud_worker_ledger_appends_total") > 0, "new devices are commissioned in the ledger"
    assert value(worker, "kcloud_worker_batch_write_seconds_count") > 0
    counters = json.loads(_get(f"http://127.0.0.1:{stack.settings.worker_web_port}/counters/"))
    assert value(worker, "kcloud_worker_assigned_partitions") == len(counters["assigned_partitions"]) > 0
    assert sorted(_lags(worker)) == counters["assigned_partitions"]

    # once the collector stops, the worker catches up: no partition lags, and every sample read is stored
    stack.collector.stop()
    wait_until(lambda: sum(_lags(worker).values()) == 0, 60, "the consumer lag to fall to 0")
    stored = value(worker, "kcloud_worker_samples_stored_total")
    assert stored == scalar(url, "SELECT count(*) FROM device_samples") > 0
    assert value(worker, "kcloud_worker_messages_total") == value(worker, "kcloud_worker_snapshots_valid_total") + 1

    # `kcloud status` sees the same pipeline: every component up, one worker, nothing left to read
    env = settings_env(stack.settings.model_copy(update={"gateway_port": int(stack.gateway_url.rsplit(":", 1)[1])}))
    result = CliRunner().invoke(app, ["status"], env=env)
    lines = {c: (state, detail) for state, c, detail in (ln.split(None, 2) for ln in result.output.splitlines())}
    assert result.exit_code == 0, result.output
    assert [c for c, (state, _) in lines.items() if state != "ok"] == [], result.output
    web = f"http://127.0.0.1:{stack.settings.worker_web_port}"
    assert lines["workers"][1].startswith(f"1 in group {stack.settings.app_id!r} ({web})"), result.output
    assert lines["workers"][1].endswith("(total 0)"), result.output
    assert lines["ledger"][1].startswith(f"{scalar(url, 'SELECT count(*) FROM deployment_events')} row(s)")
    assert lines["storage"][1].split()[0] in ("postgresql", "timescaledb")
