"""The collector's disk spool: where snapshots wait while Kafka is unreachable, bounded in bytes.

A `Spool` is a directory of append-only segment files (`seg-<n>.log`) plus a `cursor` file naming the
first record not yet delivered. Records are replayed in the order they were appended (`peek`), and
removed only when the caller says they were delivered (`commit`), so a crash between send and
acknowledgement replays a record rather than losing it. The directory survives a restart: opening it
again finds the same records in the same order.

The size limit counts every byte on disk. When an append would pass it, the OLDEST segment is deleted
and its undelivered records are counted in `dropped` with a warning naming the spool: a long outage
loses its beginning, never the newest readings. A record is framed as `magic, length, crc32, payload`;
a torn last record (the process died mid-write) or a corrupt one is detected on open or read, logged,
counted in `torn` and cut off, never raised.

`MemorySpool` has the same interface in memory (bounded the same way, lost on exit), for producers
that have no spool directory (demos, tests, benchmarks).

Example:
    >>> spool = Spool(Path("/tmp/kcloud-spool-doc"), max_bytes=1 << 20)
    >>> spool.extend([b"first", b"second"])
    2
    >>> [payload for _, payload in spool.peek(10)]
    [b'first', b'second']
    >>> spool.commit(spool.peek(1)[-1][0]); len(spool)
    1
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from array import array
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["MemorySpool", "RecordId", "Spool", "SpoolBusy", "SpoolLike"]

log = logging.getLogger("kcloud.collectors.spool")

_MAGIC = b"KS"
_HEADER = struct.Struct(">2sII")  # magic, payload length, crc32(payload)
_SEGMENT_GLOB = "seg-*.log"
_MAX_SEGMENT_BYTES = 8 * 2**20


@dataclass(frozen=True, order=True)
class RecordId:
    """Where a record starts: segment number and byte offset (ordered like the records themselves)."""

    segment: int
    offset: int


class SpoolBusy(RuntimeError):  # noqa: N818 -- reads as a state
    """Another process holds this spool directory."""


class SpoolLike(Protocol):
    """What the producer needs from a spool (disk or memory)."""

    dropped: int

    def append(self, record: bytes) -> None: ...
    def extend(self, records: Iterable[bytes]) -> int: ...
    def peek(self, max_records: int, max_bytes: int = ...) -> list[tuple[RecordId, bytes]]: ...
    def commit(self, upto: RecordId) -> None: ...
    def settle_lent(self, delivered: Collection[RecordId]) -> int: ...
    def __len__(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    def close(self) -> None: ...


@dataclass
class _Segment:
    number: int
    path: Path
    size: int = 0
    offsets: array[int] = field(default_factory=lambda: array("Q"))  # start of each valid record


class Spool:
    """A bounded, restart-safe FIFO of byte records in `directory` (see the module docstring).

    `max_bytes` bounds the bytes on disk; `segment_bytes` (default: an eighth of that, at most 8 MiB)
    is the granularity of dropping. One process at a time: a second `Spool` on the same directory
    raises `SpoolBusy`. Thread-safe.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes < 1024:
            raise ValueError(f"spool {directory}: max_bytes must be at least 1024, got {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes or max(512, min(_MAX_SEGMENT_BYTES, max_bytes // 8)), max_bytes)
        self.dropped = 0
        self.torn = 0
        self._lock = threading.RLock()
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fh = (directory / "LOCK").open("a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_fh.close()
            raise SpoolBusy(
                f"spool {directory} is in use by another collector process; give each agent its own --spool-dir"
            ) from exc
        self._segments: list[_Segment] = []
        self._writer: BinaryIO | None = None
        self._head = 0  # index, in the first segment, of the first undelivered record
        self._depth = 0
        self._lent: RecordId | None = None  # newest record handed out by peek and not yet committed
        self._dropped_lent: list[RecordId] = []  # dropped for room while lent: delivered or not, not known yet
        self._next_number = 1
        self._open()

    # -- opening ----------------------------------------------------------------------------------
    def _open(self) -> None:
        paths = sorted(self.directory.glob(_SEGMENT_GLOB), key=_number)
        for path in paths:
            seg = _Segment(_number(path), path)
            size = self._scan(seg)
            if seg.size < size:
                self.torn += 1
                log.warning(
                    "spool %s: %s in %s at byte %d; %d byte(s) cut off, the records before it are kept",
                    self.directory,
                    "the last record was torn" if path == paths[-1] else "corrupt record",
                    path.name,
                    seg.size,
                    size - seg.size,
                )
                with path.open("r+b") as fh:
                    fh.truncate(seg.size)
            self._segments.append(seg)
        cursor = self._read_cursor()
        while self._segments and self._segments[0].number < cursor.segment:
            self._segments.pop(0).path.unlink(missing_ok=True)  # delivered; deletion cut short by a crash
        if self._segments and self._segments[0].number == cursor.segment:
            self._head = bisect.bisect_left(self._segments[0].offsets, cursor.offset)
        self._next_number = max([cursor.segment, 1] + [s.number + 1 for s in self._segments])
        self._depth = sum(len(s.offsets) for s in self._segments) - self._head
        self._drop_delivered_head()
        if self._depth:
            log.info("spool %s: %d undelivered record(s) found; they are sent first", self.directory, self._depth)

    @staticmethod
    def _scan(seg: _Segment) -> int:
        """Index the valid records of one segment file; returns the file's size on disk."""
        data = seg.path.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            magic, length, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if magic != _MAGIC or end > len(data) or zlib.crc32(data[pos + _HEADER.size : end]) != crc:
                break
            seg.offsets.append(pos)
            pos = end
        seg.size = pos
        return len(data)

    def _read_cursor(self) -> RecordId:
        try:
            seg, off = (self.directory / "cursor").read_text().split()
            return RecordId(int(seg), int(off))
        except (OSError, ValueError):
            return RecordId(0, 0)

    def _write_cursor(self) -> None:
        if self._segments:
            first = self._segments[0]
            head = RecordId(first.number, first.offsets[self._head] if self._head < len(first.offsets) else first.size)
        else:
            head = RecordId(self._next_number, 0)
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{head.segment} {head.offset}\n")
        os.replace(tmp, self.directory / "cursor")

    # -- writing ----------------------------------------------------------------------------------
    def append(self, record: bytes) -> None:
        """Add one record at the tail (dropping the oldest segment(s) when the limit is reached)."""
        self.extend([record])

    def extend(self, records: Iterable[bytes]) -> int:
        """Add records at the tail in order; returns how many were kept (an oversized one is not)."""
        kept = 0
        with self._lock:
            for record in records:
                framed = _HEADER.pack(_MAGIC, len(record), zlib.crc32(record)) + record
                if len(framed) > self.segment_bytes:
                    self.dropped += 1
                    log.warning(
                        "spool %s: a record of %d bytes is larger than a spool segment (%d bytes); dropped",
                        self.directory,
                        len(record),
                        self.segment_bytes,
                    )
                    continue
                self._make_room(len(framed))
                tail = self._tail_for(len(framed))
                assert self._writer is not None
                self._writer.write(framed)
                tail.offsets.append(tail.size)
                tail.size += len(framed)
                self._depth += 1
                kept += 1
            if self._writer is not None:
                self._writer.flush()
        return kept

    def _tail_for(self, nbytes: int) -> _Segment:
        """The segment being written, rolled over to a new one when `nbytes` would not fit."""
        tail = self._segments[-1] if self._segments else None
        if tail is not None and self._writer is not None and tail.size + nbytes <= self.segment_bytes:
            return tail
        if self._writer is not None:
            self._writer.close()
        tail = _Segment(self._next_number, self.directory / f"seg-{self._next_number:012d}.log")
        self._next_number += 1
        self._segments.append(tail)
        self._writer = tail.path.open("ab")
        return tail

    def _make_room(self, nbytes: int) -> None:
        while self._segments and self.size_bytes + nbytes > self.max_bytes:
            oldest = self._segments.pop(0)
            undelivered = [RecordId(oldest.number, off) for off in oldest.offsets[self._head :]]
            lent = [rid for rid in undelivered if self._lent is not None and rid <= self._lent]
            self._dropped_lent.extend(lent)  # being replayed: counted only if the replay fails (settle_lent)
            lost = len(undelivered) - len(lent)
            self._depth -= len(lent)
            self._head = 0
            if not self._segments and self._writer is not None:
                self._writer.close()
                self._writer = None
            oldest.path.unlink(missing_ok=True)
            self._depth -= lost
            self.dropped += lost
            self._write_cursor()
            if not lost:
                continue
            log.warning(
                "spool %s: full (%d bytes); dropped the %d oldest undelivered record(s), %d since start; "
                "Kafka has been unreachable for long: fix the broker or raise --spool-max-mb",
                self.directory,
                self.max_bytes,
                lost,
                self.dropped,
            )

    # -- reading ----------------------------------------------------------------------------------
    def peek(self, max_records: int, max_bytes: int = 4 * 2**20) -> list[tuple[RecordId, bytes]]:
        """The oldest undelivered records in order (at most `max_records`, and about `max_bytes` unless
        the first record alone is larger); nothing is removed."""
        out: list[tuple[RecordId, bytes]] = []
        total = 0
        with self._lock:
            for i, seg in enumerate(list(self._segments)):
                first = self._head if i == 0 else 0
                if first >= len(seg.offsets):
                    continue
                last = first
                budget = total
                while last < len(seg.offsets) and len(out) + (last - first) < max_records:
                    end = seg.offsets[last + 1] if last + 1 < len(seg.offsets) else seg.size
                    if budget and budget + end - seg.offsets[last] > max_bytes:
                        break
                    budget += end - seg.offsets[last]
                    last += 1
                if last == first:
                    break
                start = seg.offsets[first]
                stop = seg.offsets[last] if last < len(seg.offsets) else seg.size
                with seg.path.open("rb") as fh:
                    fh.seek(start)
                    data = fh.read(stop - start)
                for k in range(first, last):
                    at = seg.offsets[k] - start
                    magic, length, crc = (
                        _HEADER.unpack_from(data, at) if at + _HEADER.size <= len(data) else (b"", 0, 0)
                    )
                    payload = data[at + _HEADER.size : at + _HEADER.size + length]
                    if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
                        self._corrupt(seg, k)
                        return out
                    out.append((RecordId(seg.number, seg.offsets[k]), payload))
                    self._lent = out[-1][0] if self._lent is None else max(self._lent, out[-1][0])
                total = budget
                if len(out) >= max_records or total >= max_bytes:
                    break
        return out

    def _corrupt(self, seg: _Segment, index: int) -> None:
        """A record changed on disk after it was written: that segment is cut off at it."""
        lost = len(seg.offsets) - index
        self.torn += 1
        self.dropped += lost
        self._depth -= lost
        log.warning(
            "spool %s: corrupt record in %s at byte %d; %d record(s) from there on are dropped",
            self.directory,
            seg.path.name,
            seg.offsets[index],
            lost,
        )
        seg.size = seg.offsets[index]
        del seg.offsets[index:]
        if seg is self._segments[-1] and self._writer is not None:
            self._writer.close()
            self._writer = None
        with seg.path.open("r+b") as fh:
            fh.truncate(seg.size)
        self._drop_delivered_head()

    def commit(self, upto: RecordId) -> None:
        """Mark every record up to and including `upto` as delivered; frees wholly delivered segments."""
        with self._lock:
            self._dropped_lent = [rid for rid in self._dropped_lent if rid > upto]
            if self._lent is not None and self._lent <= upto:
                self._lent = None
            while self._segments and self._segments[0].number < upto.segment:
                seg = self._segments.pop(0)
                self._depth -= len(seg.offsets) - self._head
                self._head = 0
                self._unlink(seg)
            if self._segments and self._segments[0].number == upto.segment:
                index = bisect.bisect_right(self._segments[0].offsets, upto.offset)
                if index > self._head:
                    self._depth -= index - self._head
                    self._head = index
            self._drop_delivered_head()
            self._write_cursor()

    def settle_lent(self, delivered: Collection[RecordId]) -> int:
        """A replay is over: the records dropped for room while lent that are not in `delivered` (and
        were not committed) are lost after all; count them. Returns how many."""
        with self._lock:
            lost = [rid for rid in self._dropped_lent if rid not in delivered]
            self._dropped_lent = []
            self._lent = None
            if lost:
                self.dropped += len(lost)
                log.warning(
                    "spool %s: full earlier; dropped the %d oldest undelivered record(s), %d since start "
                    "(dropped for room while being replayed, and not delivered)",
                    self.directory,
                    len(lost),
                    self.dropped,
                )
            return len(lost)

    def _drop_delivered_head(self) -> None:
        while self._segments and self._head >= len(self._segments[0].offsets):
            self._unlink(self._segments.pop(0))
            self._head = 0

    def _unlink(self, seg: _Segment) -> None:
        if self._writer is not None and not self._segments:
            self._writer.close()  # `seg` was the one being written
            self._writer = None
        seg.path.unlink(missing_ok=True)

    # -- state ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Undelivered records."""
        return self._depth

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk."""
        return sum(s.size for s in self._segments)

    def close(self) -> None:
        """Flush and release the directory (undelivered records stay for the next process)."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()


def _number(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


class MemorySpool:
    """The `Spool` interface in memory: bounded by `max_bytes`, oldest dropped and counted, lost on exit."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.dropped = 0
        self._records: deque[tuple[int, bytes]] = deque()
        self._next = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, record: bytes) -> None:
        self.extend([record])

    def extend(self, records: Iterable[bytes]) -> int:
        n = 0
        with self._lock:
            for record in records:
                self._records.append((self._next, record))
                self._next += 1
                self._bytes += len(record)
                n += 1
                while self._bytes > self.max_bytes and self._records:
                    _, old = self._records.popleft()
                    self._bytes -= len(old)
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.warning("memory spool full: %d oldest record(s) dropped so far", self.dropped)
        return n

    def peek(self, max_records: int, max_bytes: int = 4 * 2**20) -> list[tuple[RecordId, bytes]]:
        out: list[tuple[RecordId, bytes]] = []
        total = 0
        with self._lock:
            for number, record in self._records:
                if len(out) >= max_records or (out and total + len(record) > max_bytes):
                    break
                out.append((RecordId(0, number), record))
                total += len(record)
        return out

    def commit(self, upto: RecordId) -> None:
        with self._lock:
            while self._records and self._records[0][0] <= upto.offset:
                self._bytes -= len(self._records.popleft()[1])

    def settle_lent(self, delivered: Collection[RecordId]) -> int:
        """Nothing to settle: the memory spool counts a drop when it happens."""
        return 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        if self._records:
            log.warning("memory spool: %d undelivered record(s) lost at close", len(self._records))
