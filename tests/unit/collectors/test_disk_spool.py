"""The agent's disk spool: order, restart safety, the size bound (oldest dropped and counted) and damage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from collectors.delivery import decode_record, encode_record
from collectors.spool import MemorySpool, Spool, SpoolBusy


def _records(n: int, size: int = 100) -> list[bytes]:
    return [f"{i:06d}".encode().ljust(size, b".") for i in range(n)]


def _drain(spool: Spool | MemorySpool) -> list[bytes]:
    out: list[bytes] = []
    while batch := spool.peek(7):
        out += [payload for _, payload in batch]
        spool.commit(batch[-1][0])
    return out


def test_records_come_back_in_append_order_and_leave_only_when_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=1024)
    spool.extend(_records(50))
    first = spool.peek(3)
    assert [p for _, p in first] == _records(3)
    assert spool.peek(3) == first  # peeking removes nothing
    assert len(spool) == 50
    assert _drain(spool) == _records(50)
    assert len(spool) == 0
    assert spool.size_bytes == 0
    assert not list((tmp_path / "s").glob("seg-*.log"))  # delivered segments are deleted
    spool.close()


def test_undelivered_records_survive_a_restart_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=1024)
    spool.extend(_records(30))
    spool.commit(spool.peek(12)[-1][0])
    spool.close()

    again = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=1024)
    assert len(again) == 18
    assert _drain(again) == _records(30)[12:]
    again.close()


def test_full_spool_drops_the_oldest_counts_them_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s", max_bytes=4096, segment_bytes=1024)
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.spool"):
        spool.extend(_records(100))
    assert spool.size_bytes <= 4096
    kept = _drain(spool)
    assert spool.dropped == 100 - len(kept) > 0
    assert kept == _records(100)[-len(kept) :]  # the newest are kept, in order
    assert any("full" in r.getMessage() and str(tmp_path / "s") in r.getMessage() for r in caplog.records)
    spool.close()


def test_a_torn_last_record_is_cut_off_on_open_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.extend(_records(5))
    spool.close()
    segment = next((tmp_path / "s").glob("seg-*.log"))
    segment.write_bytes(segment.read_bytes()[:-30])  # the process died mid-write

    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.spool"):
        again = Spool(tmp_path / "s", max_bytes=1 << 20)
    assert again.torn == 1
    assert _drain(again) == _records(4)
    assert any("torn" in r.getMessage() for r in caplog.records)
    again.close()


def test_a_record_corrupted_on_disk_is_dropped_and_counted_not_raised(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.extend(_records(5))
    segment = next((tmp_path / "s").glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    kept = _drain(spool)
    assert kept == _records(len(kept))
    assert spool.dropped == 5 - len(kept) > 0
    spool.close()


def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    with pytest.raises(SpoolBusy, match="--spool-dir"):
        Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.close()
    Spool(tmp_path / "s", max_bytes=1 << 20).close()  # free again once closed


def test_memory_spool_is_bounded_the_same_way() -> None:
    spool = MemorySpool(max_bytes=1000)
    spool.extend(_records(30))
    kept = _drain(spool)
    assert kept == _records(30)[-len(kept) :]
    assert spool.dropped == 30 - len(kept) > 0


@pytest.mark.parametrize("key", [None, b"", b"gpu-01"])
def test_spool_records_keep_the_kafka_key(key: bytes | None) -> None:
    assert decode_record(encode_record(key, b'{"seq":1}')) == (key, b'{"seq":1}')
