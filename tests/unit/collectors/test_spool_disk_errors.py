"""The disk spool on a really full or failing filesystem (a small tmpfs or loop-mounted ext4, so these run
as root and are skipped elsewhere): it never raises, drops the oldest records on disk to make room and
counts each one, holds records in bounded memory when the disk takes nothing, and writes to disk again
once it does; the agent's `seq` keeps counting and is persisted in place."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from small_disk import SmallDisk

from collectors.agent import SeqStore
from collectors.spool import Spool

MountDisk = Callable[..., SmallDisk]


def _records(n: int, start: int = 0, size: int = 1000) -> list[bytes]:
    return [f"{i:06d}".encode().ljust(size, b".") for i in range(start, start + n)]


def _drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while batch := spool.peek(7):
        out += [payload for _, payload in batch]
        spool.commit(batch[-1][0])
    return out


def _reported(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The "N since start" totals of the spool's drop warnings, in order."""
    return [
        int(m.group(1))
        for r in caplog.records
        if (m := re.search(r"dropped the \d+ oldest undelivered record\(s\), (\d+) since start", r.getMessage()))
    ]


@pytest.mark.parametrize(("kind", "size_kib"), [("tmpfs", 256), ("ext4", 1024)])
def test_a_full_disk_drops_the_oldest_records_on_it_and_counts_each(
    small_disk: MountDisk, kind: str, size_kib: int, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk(kind, size_kib)
    spool = Spool(disk.path / "spool", max_bytes=64 * 2**20, segment_bytes=16 * 1024)
    sent = _records(1500)  # 1.5 MB into a disk of 256 KiB / 1 MiB: the disk fills long before max_bytes
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.spool"):
        for i in range(0, len(sent), 10):  # as the delivery thread does: a few records per call
            assert spool.extend(sent[i : i + 10]) == 10
    assert spool.write_errors.get("ENOSPC", 0) > 0
    assert spool.disk_problem is None and spool.memory_bytes == 0  # the room made on disk sufficed
    depth = len(spool)
    spool.close()

    again = Spool(disk.path / "spool", max_bytes=64 * 2**20, segment_bytes=16 * 1024)
    assert again.torn == 0  # a failed write left no partial record behind
    assert len(again) == depth
    kept = _drain(again)
    again.close()
    assert kept == sent[-len(kept) :]  # the newest, in order, each once
    assert spool.dropped == len(sent) - len(kept) > 0
    assert _reported(caplog)[-1] == spool.dropped
    assert any("the disk is full (No space left on device)" in r.getMessage() for r in caplog.records)


def test_a_disk_full_of_other_data_holds_records_in_memory_then_writes_to_disk_again(
    small_disk: MountDisk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("tmpfs", 256)
    spool = Spool(disk.path / "spool", max_bytes=64 * 2**20, segment_bytes=16 * 1024, disk_retry_s=0)
    disk.fill()
    with caplog.at_level(logging.INFO, logger="kcloud.collectors.spool"):
        assert spool.extend(_records(50)) == 50
        assert spool.disk_problem == "No space left on device"
        assert spool.size_bytes == 0 and spool.memory_bytes == 50 * 1010
        assert spool.dropped == 0 and len(spool) == 50
        disk.free()
        assert spool.extend(_records(50, start=50)) == 50
    assert spool.disk_problem is None
    assert spool.size_bytes == 50 * 1010  # the new ones went to disk, behind those held
    messages = [r.getMessage() for r in caplog.records]
    assert any("held in memory" in m and "No space left on device" in m for m in messages)
    assert any("writing to the disk again" in m and "50 record(s) held in memory" in m for m in messages)
    assert _drain(spool) == _records(100)
    assert spool.dropped == 0 and spool.memory_bytes == 0
    spool.close()


def test_memory_held_records_are_bounded_oldest_dropped_and_counted(
    small_disk: MountDisk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("tmpfs", 256)
    spool = Spool(disk.path / "spool", max_bytes=1 << 20, segment_bytes=4096, memory_max_bytes=16 * 1024)
    disk.fill()
    sent = _records(100)
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.spool"):
        for record in sent:
            spool.append(record)
    assert spool.memory_bytes <= 16 * 1024
    kept = _drain(spool)
    assert kept == sent[-len(kept) :]
    assert spool.dropped == len(sent) - len(kept) > 0
    assert _reported(caplog)[-1] == spool.dropped
    assert any("the memory buffer is full" in r.getMessage() for r in caplog.records)
    spool.close()


def test_records_held_in_memory_are_counted_as_dropped_at_close(small_disk: MountDisk) -> None:
    disk = small_disk("tmpfs", 256)
    spool = Spool(disk.path / "spool", max_bytes=1 << 20)
    disk.fill()
    spool.extend(_records(4))
    disk.free()  # too late: the next write would have gone to disk
    assert len(spool) == 4 and spool.memory_bytes == 4 * 1010
    spool.close()
    assert spool.dropped == 4
    again = Spool(disk.path / "spool", max_bytes=1 << 20)
    assert len(again) == 0
    again.close()


def test_a_disk_turned_read_only_keeps_what_it_holds_and_new_records_go_to_memory(
    small_disk: MountDisk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("ext4", 1024)
    spool = Spool(disk.path / "spool", max_bytes=1 << 20, segment_bytes=8192)
    spool.extend(_records(20))
    disk.fail_read_only()
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.spool"):
        assert spool.extend(_records(20, start=20)) == 20
        assert spool.disk_problem == "Read-only file system"
        assert spool.memory_bytes == 20 * 1010
        assert _drain(spool) == _records(40)  # read back from the read-only disk, then from memory
    assert spool.write_errors.get("EROFS", 0) > 0
    assert spool.dropped == 0
    warnings = [r.getMessage() for r in caplog.records if "may be sent again" in r.getMessage()]
    assert len(warnings) == 1, warnings  # the cursor and the delivered segments: logged once
    spool.close()


def test_seq_keeps_counting_on_a_full_disk_and_is_persisted_in_place(
    small_disk: MountDisk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("tmpfs", 256)
    seq = SeqStore(disk.path / "seq")
    assert [seq.next() for _ in range(3)] == [0, 1, 2]
    disk.fill()
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.agent"):
        assert [seq.next() for _ in range(3)] == [3, 4, 5]
    assert int((disk.path / "seq").read_text()) == 6  # overwritten in the block it had
    assert not caplog.records
    assert SeqStore(disk.path / "seq").next() == 6


def test_seq_keeps_counting_when_the_disk_turns_read_only(
    small_disk: MountDisk, caplog: pytest.LogCaptureFixture
) -> None:
    disk = small_disk("ext4", 1024)
    seq = SeqStore(disk.path / "seq")
    assert seq.next() == 0
    disk.fail_read_only()
    with caplog.at_level(logging.WARNING, logger="kcloud.collectors.agent"):
        assert [seq.next() for _ in range(3)] == [1, 2, 3]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "cannot be written (Read-only file system)" in warnings[0], warnings
