"""`kcloud collect prom --file PAGE --once` against the real test broker: the snapshot is on the telemetry
topic, keyed by node id, with the bytes `--print` shows, and the agent exits 0 only once it is acknowledged."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from kafka import KafkaConsumer

from infra.kafka import KafkaService
from kcloud.records import parse_snapshot
from kcloud.settings import Settings
from kcloud.topics import TELEMETRY

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "tests" / "fixtures" / "prometheus" / "rbln-ca25-rbln-exporter-new-names.prom"


def test_once_delivers_the_snapshot_to_the_topic_keyed_by_node(
    base_settings: Settings, kafka_up: KafkaService, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(update={"topic_namespace": f"t{uuid.uuid4().hex[:8]}."})
    KafkaService(settings).ensure_topics()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCLOUD_")}
    env |= {
        "KCLOUD_STATE_DIR": str(tmp_path / "state"),
        "KCLOUD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KCLOUD_TOPIC_NAMESPACE": settings.topic_namespace,
    }
    argv = [sys.executable, "-c", "from console.main import main; main()", "collect", "prom", "--map", "rbln"]
    argv += ["--file", str(PAGE), "--node-id", "npu-kt-01", "--site-id", "kt-cheonan"]
    sent = subprocess.run(
        [*argv, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert sent.returncode == 0, sent.stderr
    printed = subprocess.run(
        [*argv, "--once", "--print"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert printed.returncode == 0, printed.stderr

    consumer = KafkaConsumer(
        settings.topic(TELEMETRY),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        messages = list(consumer)
    finally:
        consumer.close()
    assert len(messages) == 1
    assert messages[0].key == b"npu-kt-01"
    on_topic, shown = parse_snapshot(messages[0].value), parse_snapshot(printed.stdout)
    assert on_topic.seq == 0 and on_topic.source == "prom:rbln"
    assert on_topic.devices == shown.devices
    assert (tmp_path / "state" / "spool" / "prom-rbln" / "seq").read_text().strip() == "1"
