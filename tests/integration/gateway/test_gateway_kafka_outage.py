"""The gateway while Kafka is away: a push is answered 503 with Retry-After and nothing of it is
half-accepted; once the broker is back, pushes are answered 202 again.

The broker here is a dedicated one (ports 19292/19293, state under .kcloud/test-gw-outage; free ports
when another process holds those), because the test stops it; the shared test broker is never touched.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import ROOT, GatewayProcess, audit_rows, consume, issue, ndjson, snapshot

from infra.kafka import KafkaService
from infra.process import port_open
from kcloud.records import parse_snapshot
from kcloud.settings import Settings, load_settings
from kcloud.topics import TELEMETRY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def outage_broker(kafka_up: KafkaService, tmp_path: Path) -> Iterator[KafkaService]:
    """A broker of this test's own, which the test may stop and start: on 19292/19293 with its state in
    .kcloud/test-gw-outage, or, when another process holds those ports, on free ports with its state in
    the test's temporary directory (sharing the test broker's jars)."""
    overrides: dict[str, object] = {
        "state_dir": ROOT / ".kcloud" / "test-gw-outage",
        "kafka_bootstrap": "127.0.0.1:19292",
        "kafka_controller_port": 19293,
        "kafka_partitions": 3,
        "topic_namespace": f"t{uuid.uuid4().hex[:8]}.",
    }
    svc = KafkaService(load_settings(overrides=overrides))
    if svc.running_pid() is None and (port_open("127.0.0.1", 19292) or port_open("127.0.0.1", 19293)):
        home = tmp_path / "broker"
        (home / "kafka").mkdir(parents=True)
        (home / "kafka" / "lib").symlink_to(kafka_up.lib)
        overrides |= {
            "state_dir": home,
            "kafka_bootstrap": f"127.0.0.1:{_free_port()}",
            "kafka_controller_port": _free_port(),
        }
        svc = KafkaService(load_settings(overrides=overrides))
    svc.up()
    try:
        yield svc
    finally:
        svc.down()


def test_kafka_outage_gets_503_with_retry_after_and_nothing_half_accepted(
    outage_broker: KafkaService, start_gateway: Callable[..., GatewayProcess], gw_settings: Settings
) -> None:
    broker = outage_broker.settings
    gw = start_gateway(
        kafka_bootstrap=broker.kafka_bootstrap,
        kafka_controller_port=broker.kafka_controller_port,
        state_dir=broker.state_dir,
        topic_namespace=broker.topic_namespace,
    )
    token = issue(gw_settings, "furiosa")
    assert gw.push(token, ndjson(snapshot("before", seq=1))).status_code == 202

    outage_broker.down()
    started = time.monotonic()
    refused = gw.push(token, ndjson(snapshot("during-1", seq=2), snapshot("during-2", seq=2)))
    waited = time.monotonic() - started
    again = gw.push(token, ndjson(snapshot("during-3", seq=3)))
    health = httpx.get(f"{gw.url}/healthz")

    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "kafka_unavailable"
    assert "send the whole push again" in refused.json()["message"]
    assert waited < 30, f"a push during the outage took {waited:.1f}s to be refused"
    assert again.status_code == 503 and int(again.headers["Retry-After"]) >= 1
    assert health.status_code == 503 and health.json()["kafka"].startswith("unavailable")

    outage_broker.up()
    deadline = time.monotonic() + 90
    answer = gw.push(token, ndjson(snapshot("after", seq=4)))
    while answer.status_code == 503 and time.monotonic() < deadline:
        time.sleep(int(answer.headers["Retry-After"]))
        answer = gw.push(token, ndjson(snapshot("after", seq=4)))
    assert answer.status_code == 202, f"{answer.text}\n{gw.log()}"

    records = consume(broker, broker.topic(TELEMETRY), until=10, timeout=10)
    nodes = [parse_snapshot(value).node.node_id for _, value in records]
    assert "before" in nodes and "after" in nodes
    assert not {"during-1", "during-2", "during-3"} & set(nodes), f"a refused push reached Kafka: {nodes}"
    statuses = [(r["status"], r["accepted"]) for r in audit_rows(gw_settings)]
    assert statuses[:3] == [(202, 1), (503, 0), (503, 0)]
    assert statuses[-1] == (202, 1)
