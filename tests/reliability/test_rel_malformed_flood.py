"""Ten thousand malformed messages mixed into valid telemetry: every malformed one reaches the dead-letter
topic with a reason and its original bytes, every valid sample is stored, and the worker rides it out in
one process whose counters only grow."""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pipeline_helpers import fleet_input
from rel_malformed import EXPECTED_REASONS, malformed_messages
from reliability_helpers import count_samples, record_figures, start_worker

from kcloud.settings import Settings
from kcloud.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.reliability

SEED = 5150
MALFORMED = 10_000
MONOTONIC = ("messages", "snapshots_valid", "samples_in", "samples_stored", "deadlettered")


def _dead_letters(settings: Settings, expect: int, timeout_s: float = 60.0) -> list[dict[str, object]]:
    consumer = KafkaConsumer(
        settings.topic(DEADLETTER),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expect and time.monotonic() < deadline:
            out.extend(json.loads(record.value) for record in consumer)
    finally:
        consumer.close()
    return out


def test_malformed_flood_is_dead_lettered_while_valid_traffic_is_stored(rel_settings: Settings, tmp_path: Path) -> None:
    settings = rel_settings.model_copy(update={"ingest_batch_size": 500})
    valid = fleet_input(nodes=8, ticks=30)
    bad = malformed_messages(MALFORMED, SEED)
    traffic: list[tuple[bytes, bytes]] = [(s.node.node_id.encode(), s.to_json_bytes()) for s in valid]
    traffic += [(f"fuzz-{i % 16}".encode(), m.raw) for i, m in enumerate(bad)]
    random.Random(SEED).shuffle(traffic)

    worker = start_worker(settings, tmp_path, "flood")
    try:
        assert worker.proc is not None
        pid = worker.proc.pid
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20)
        for key, value in traffic:
            producer.send(settings.topic(TELEMETRY), key=key, value=value)
        producer.flush()
        producer.close()

        seen: list[dict[str, int]] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert worker.proc.poll() is None, f"the worker exited ({worker.proc.returncode}); see {worker.log_path}"
            now = worker.counters()
            seen.append({k: int(now[k]) for k in MONOTONIC})
            if now["deadlettered"] + now["snapshots_valid"] >= len(traffic):  # every batch finished
                break
            time.sleep(1.0)
        final = worker.counters()
        assert final["messages"] == len(traffic), f"consumed {final['messages']} of {len(traffic)}: {final}"
        assert worker.proc.poll() is None and worker.proc.pid == pid
    finally:
        worker.stop()

    letters = _dead_letters(settings, MALFORMED)
    by_bytes = {m.raw: m.cls for m in bad}
    reasons: Counter[str] = Counter()
    wrong: list[str] = []
    for dl in letters:
        original = base64.b64decode(str(dl["original_b64"]))
        cls = by_bytes.get(original, "valid")
        reasons[f"{cls}:{dl['reason']}"] += 1
        if cls == "valid" or dl["reason"] not in EXPECTED_REASONS[cls] or not dl["detail"]:
            wrong.append(f"{cls}: {dl['reason']}: {str(dl['detail'])[:120]}")
    missing = Counter(m.cls for m in bad) - Counter(
        by_bytes.get(base64.b64decode(str(d["original_b64"])), "valid") for d in letters
    )
    counted = count_samples(settings.effective_database_url, valid)
    record_figures(
        "malformed_flood",
        {
            "messages_sent": len(traffic),
            "malformed_sent": len(bad),
            "dead_letters": len(letters),
            "dead_letters_by_class_and_reason": dict(sorted(reasons.items())),
            "samples": counted,
            "worker_counters": {k: final[k] for k in (*MONOTONIC, "db_retries")},
        },
    )
    assert not missing, f"malformed messages not dead-lettered, by class: {dict(missing)}"
    assert len(letters) == MALFORMED, f"{len(letters)} dead letters for {MALFORMED} malformed messages"
    assert not wrong, f"{len(wrong)} dead letters with an unexpected reason, e.g. {wrong[:5]}"
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted
    assert final["deadlettered"] == MALFORMED and final["db_retries"] == 0, final
    for key in MONOTONIC:
        values = [c[key] for c in seen]
        assert values == sorted(values), f"counter {key} went backwards: {values}"
