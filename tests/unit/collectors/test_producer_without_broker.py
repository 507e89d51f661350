"""`SnapshotProducer` when no broker answers (nothing listens on the bootstrap port): sending never
blocks, and every snapshot waits in the spool, in the order it was sent, with its key."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import collectors.delivery
from collectors.delivery import decode_record
from collectors.producer import SnapshotProducer, compression_type
from collectors.simulator import SimulatedFleet
from collectors.spool import MemorySpool
from kcloud.settings import Settings


@pytest.fixture
def unreachable(tmp_path: Path) -> Settings:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Settings(state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{port}")


@pytest.mark.parametrize("events_per_step", [3, 50_000])
def test_every_record_sent_while_kafka_is_away_waits_in_the_spool_in_order(
    unreachable: Settings, monkeypatch: pytest.MonkeyPatch, events_per_step: int
) -> None:
    monkeypatch.setattr(collectors.delivery, "_EVENTS_PER_STEP", events_per_step)
    spool = MemorySpool(max_bytes=64 * 2**20)
    producer = SnapshotProducer(unreachable, spool=spool, connect_timeout_s=1, delivery_timeout_s=1)
    expected = []
    for i in range(300):
        record = (f"node-{i % 7}".encode(), f'{{"seq":{i}}}'.encode())
        expected.append(record)
        if i % 3:
            producer.send_raw(record[1], key=record[0])
        else:
            producer.send_records([record])
    assert producer.flush(timeout=1) is False  # nothing acknowledged, and it says so instead of blocking
    assert producer.pending() == 300
    assert [decode_record(r) for _, r in spool.peek(1000, max_bytes=2**30)] == expected
    producer.close(timeout=0.1)


def test_sending_a_large_tick_returns_at_once_without_a_broker(unreachable: Settings) -> None:
    fleet = SimulatedFleet(2000, seed=2)
    records = fleet.tick_bytes(datetime(2026, 11, 3, 5, tzinfo=UTC), seq=0)
    producer = SnapshotProducer(unreachable, spool=MemorySpool(2**30), connect_timeout_s=1)
    started = time.perf_counter()
    assert producer.send_records(records) == len(records)
    assert time.perf_counter() - started < 0.5
    assert producer.connected is False
    producer.close(timeout=0.1)


def test_a_codec_whose_package_is_missing_is_refused_naming_the_package() -> None:
    from kafka.codec import has_zstd

    if has_zstd():
        pytest.skip("zstandard is installed here")
    with pytest.raises(ValueError, match="needs the zstandard package"):
        compression_type("zstd")
    assert compression_type("auto") in {"lz4", "zstd", "gzip"}
