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

The disk itself may refuse a write before that limit (`ENOSPC`: full, `EDQUOT`: over quota, `EIO`,
`EROFS`: read-only). A record is written whole or not at all (the bytes of a failed write are cut
off), and the spool never raises for it: a full disk or quota drops the oldest segments on disk, each
drop counted in `dropped` and logged with the count, until the record fits (never a segment newer than
records held in memory); a disk that cannot take it even then, or that fails otherwise, has it held
in memory, in order behind the records on disk,
bounded by `memory_max_bytes` (beyond that the oldest held are dropped, counted and logged the same
way), while the disk is tried again every `disk_retry_s` seconds; once a write succeeds, new records
go to disk again, behind those held. Failed writes are counted by errno name in `write_errors`.
Records held in memory are lost at `close` (counted). A segment that cannot be read is dropped and
counted like a corrupt one; a cursor that cannot be written or a delivered segment that cannot be
deleted only costs a replay after a restart (logged once).

`MemorySpool` has the same interface in memory (bounded the same way, lost on exit), for producers
that have no spool directory (demos, tests, benchmarks). Imports the standard library and
`collectors.statefile` only.

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
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from array import array
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from io import FileIO
from pathlib import Path
from typing import Protocol

from collectors.statefile import write_state

__all__ = ["MemorySpool", "RecordId", "Spool", "SpoolBusy", "SpoolLike"]

log = logging.getLogger("kcloud.collectors.spool")

_MAGIC = b"KS"
_HEADER = struct.Struct(">2sII")  # magic, payload length, crc32(payload)
_SEGMENT_GLOB = "seg-*.log"
_MAX_SEGMENT_BYTES = 8 * 2**20
_MAX_MEMORY_BYTES = 64 * 2**20
_DISK_RETRY_S = 1.0
_SPACE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})


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
    write_errors: dict[str, int]

    def append(self, record: bytes) -> None: ...
    def extend(self, records: Iterable[bytes]) -> int: ...
    def peek(self, max_records: int, max_bytes: int = ...) -> list[tuple[RecordId, bytes]]: ...
    def commit(self, upto: RecordId) -> None: ...
    def settle_lent(self, delivered: Collection[RecordId]) -> int: ...
    def __len__(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    def close(self) -> None: ...


@dataclass
class _Segment:
    number: int
    path: Path | None  # None: held in memory, in `data` (the disk could not be written)
    size: int = 0
    offsets: array[int] = field(default_factory=lambda: array("Q"))  # start of each valid record
    data: bytearray | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"memory segment {self.number}"


def _error_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


class Spool:
    """A bounded, restart-safe FIFO of byte records in `directory` (see the module docstring).

    `max_bytes` bounds the bytes on disk; `segment_bytes` (default: an eighth of that, at most 8 MiB)
    is the granularity of dropping. While the disk cannot be written, records are held in memory, at
    most `memory_max_bytes` (default: `max_bytes`, at most 64 MiB), and the disk is tried again every
    `disk_retry_s` seconds. One process at a time: a second `Spool` on the same directory raises
    `SpoolBusy`. Thread-safe.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int | None = None,
        *,
        memory_max_bytes: int | None = None,
        disk_retry_s: float = _DISK_RETRY_S,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError(f"spool {directory}: max_bytes must be at least 1024, got {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes or max(512, min(_MAX_SEGMENT_BYTES, max_bytes // 8)), max_bytes)
        memory = memory_max_bytes if memory_max_bytes is not None else min(max_bytes, _MAX_MEMORY_BYTES)
        self.memory_max_bytes = max(memory, self.segment_bytes)
        self.disk_retry_s = disk_retry_s
        self.dropped = 0
        self.torn = 0
        self.write_errors: dict[str, int] = {}  # failed disk writes by errno name (ENOSPC, EROFS, ...)
        self.disk_problem: str | None = None  # why the disk cannot be written now; records go to memory
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
        self._writer: FileIO | None = None
        self._writing: _Segment | None = None  # the segment `_writer` appends to (always the last one)
        self._head = 0  # index, in the first segment, of the first undelivered record
        self._depth = 0
        self._lent: RecordId | None = None  # newest record handed out by peek and not yet committed
        self._dropped_lent: list[RecordId] = []  # dropped for room while lent: delivered or not, not known yet
        self._next_number = 1
        self._retry_at = 0.0
        self._problem_since = 0.0
        self._state_problem: str | None = None  # the cursor cannot be written or a segment not deleted
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
                with contextlib.suppress(OSError), path.open("r+b") as fh:
                    fh.truncate(seg.size)
            self._segments.append(seg)
        cursor = self._read_cursor()
        while self._segments and self._segments[0].number < cursor.segment:
            self._discard(self._segments.pop(0))  # delivered; deletion cut short by a crash
        if self._segments and self._segments[0].number == cursor.segment:
            self._head = bisect.bisect_left(self._segments[0].offsets, cursor.offset)
        self._next_number = max([cursor.segment, 1] + [s.number + 1 for s in self._segments])
        self._depth = sum(len(s.offsets) for s in self._segments) - self._head
        self._drop_delivered_head()
        self._write_cursor()  # the file exists from now on: a full disk can still overwrite it in place
        if self._depth:
            log.info("spool %s: %d undelivered record(s) found; they are sent first", self.directory, self._depth)

    @staticmethod
    def _scan(seg: _Segment) -> int:
        """Index the valid records of one segment file; returns the file's size on disk."""
        assert seg.path is not None
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
        error = write_state(self.directory / "cursor", f"{head.segment} {head.offset}\n")
        if error is not None:
            self._state_failed(f"cannot record what was delivered in {self.directory / 'cursor'}", error)
        elif self._state_problem is not None:
            log.info("spool %s: delivery progress is recorded again", self.directory)
            self._state_problem = None

    def _state_failed(self, what: str, exc: OSError) -> None:
        """The cursor or a delivered segment could not be written or deleted: delivery goes on; logged once."""
        self._count_error(exc)
        if self._state_problem is None:
            log.warning(
                "spool %s: %s (%s); delivery goes on, but after a restart before this clears, records already "
                "delivered may be sent again",
                self.directory,
                what,
                exc.strerror or exc,
            )
        self._state_problem = what

    # -- writing ----------------------------------------------------------------------------------
    def append(self, record: bytes) -> None:
        """Add one record at the tail (dropping the oldest segment(s) when the limit is reached)."""
        self.extend([record])

    def extend(self, records: Iterable[bytes]) -> int:
        """Add records at the tail in order; returns how many were kept (an oversized one is not).

        Never raises for the disk: a full disk drops the oldest records on it, and a disk that cannot
        take a record at all has it held in memory (see the module docstring)."""
        with self._lock:
            framed: list[bytes] = []
            for record in records:
                frame = _HEADER.pack(_MAGIC, len(record), zlib.crc32(record)) + record
                if len(frame) > self.segment_bytes:
                    self.dropped += 1
                    log.warning(
                        "spool %s: a record of %d bytes is larger than a spool segment (%d bytes); dropped, "
                        "%d since start",
                        self.directory,
                        len(record),
                        self.segment_bytes,
                        self.dropped,
                    )
                    continue
                framed.append(frame)
            i = 0
            while i < len(framed):
                written = self._to_disk(framed, i) if self._disk_due() else 0
                if not written:
                    self._to_memory(framed[i])
                    written = 1
                i += written
            return len(framed)

    def _disk_due(self) -> bool:
        return self.disk_problem is None or time.monotonic() >= self._retry_at

    def _to_disk(self, framed: list[bytes], i: int) -> int:
        """Write `framed[i]` and as many after it as fit in the same segment; returns how many (0: the disk
        cannot take `framed[i]`, even with every older record on it dropped)."""
        first = len(framed[i])
        while True:
            self._make_room(first)
            run, total = 1, first
            try:
                tail = self._tail_for(first)
                room = min(self.segment_bytes - tail.size, self.max_bytes - self.size_bytes)
                while i + run < len(framed) and total + len(framed[i + run]) <= room:
                    total += len(framed[i + run])
                    run += 1
                self._write(tail, framed[i : i + run])
            except OSError as exc:
                self._count_error(exc)
                if exc.errno in _SPACE_ERRORS and self._drop_for_space(exc):
                    continue
                self._disk_failed(exc)
                return 0
            if self.disk_problem is not None:
                self._disk_recovered()
            return run

    def _write(self, tail: _Segment, frames: list[bytes]) -> None:
        """Append whole records to `tail`'s file; on failure the partial bytes are cut off and it raises."""
        assert self._writer is not None and tail is self._writing
        data = memoryview(b"".join(frames))
        done = 0
        try:
            while done < len(data):
                n = self._writer.write(data[done:])
                if not n:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        except OSError:
            self._cut_tail(tail)
            raise
        for frame in frames:
            tail.offsets.append(tail.size)
            tail.size += len(frame)
        self._depth += len(frames)

    def _cut_tail(self, tail: _Segment) -> None:
        """A write to `tail` failed: cut its partial bytes off (a file that cannot be cut is written no
        more: the next open cuts them); an empty tail is removed."""
        assert self._writer is not None
        try:
            self._writer.truncate(tail.size)
        except OSError:
            self._close_writer()
        if not tail.offsets:
            self._segments.remove(tail)
            self._discard(tail)

    def _tail_for(self, nbytes: int) -> _Segment:
        """The segment being written, rolled over to a new one when `nbytes` would not fit."""
        tail = self._writing
        if tail is not None and tail.size + nbytes <= self.segment_bytes:
            return tail
        self._close_writer()
        path = self.directory / f"seg-{self._next_number:012d}.log"
        writer = path.open("ab", buffering=0)
        tail = _Segment(self._next_number, path)
        self._next_number += 1
        self._segments.append(tail)
        self._writer, self._writing = writer, tail
        return tail

    def _make_room(self, nbytes: int) -> None:
        """Keep the bytes on disk within `max_bytes`: drop the oldest segments on disk."""
        while self.size_bytes + nbytes > self.max_bytes:
            index = next((k for k, s in enumerate(self._segments) if s.path is not None), None)
            if index is None:
                return
            self._log_drop(
                self._drop_segment(index),
                f"full ({self.max_bytes} bytes)",
                "Kafka has been unreachable for long: fix the broker or raise --spool-max-mb",
            )

    def _drop_for_space(self, exc: OSError) -> bool:
        """The disk is full: drop the oldest segment if it is on disk (True), else leave it (False)."""
        if not self._segments or self._segments[0].path is None:
            return False
        self._log_drop(
            self._drop_segment(0),
            f"the disk is full ({exc.strerror or exc})",
            f"free space on the disk under {self.directory}, or fix the broker",
        )
        return True

    def _to_memory(self, frame: bytes) -> None:
        """Hold one record in memory (the disk cannot take it), dropping the oldest held beyond the bound."""
        while self.memory_bytes + len(frame) > self.memory_max_bytes:
            index = next(k for k, s in enumerate(self._segments) if s.path is None)
            self._log_drop(
                self._drop_segment(index),
                f"the disk cannot be written ({self.disk_problem}) and the memory buffer is full "
                f"({self.memory_max_bytes} bytes)",
                f"fix the disk under {self.directory}, or the broker",
            )
        tail = self._segments[-1] if self._segments else None
        if tail is None or tail.data is None or tail.size + len(frame) > self.segment_bytes:
            self._close_writer()
            tail = _Segment(self._next_number, None, data=bytearray())
            self._next_number += 1
            self._segments.append(tail)
        assert tail.data is not None
        tail.offsets.append(tail.size)
        tail.data += frame
        tail.size += len(frame)
        self._depth += 1

    def _drop_segment(self, index: int) -> int:
        """Drop one segment with its undelivered records; returns how many of them count as lost now
        (those lent to a replay are counted by `settle_lent`, if it was not delivered)."""
        seg = self._segments.pop(index)
        first = self._head if index == 0 else 0
        undelivered = [RecordId(seg.number, off) for off in seg.offsets[first:]]
        lent = [rid for rid in undelivered if self._lent is not None and rid <= self._lent]
        self._dropped_lent.extend(lent)  # being replayed: counted only if the replay fails (settle_lent)
        lost = len(undelivered) - len(lent)
        self._depth -= len(undelivered)
        if index == 0:
            self._head = 0
        self._discard(seg)
        self.dropped += lost
        self._write_cursor()
        return lost

    def _log_drop(self, lost: int, why: str, advice: str) -> None:
        if lost:
            log.warning(
                "spool %s: %s; dropped the %d oldest undelivered record(s), %d since start; %s",
                self.directory,
                why,
                lost,
                self.dropped,
                advice,
            )

    def _count_error(self, exc: OSError) -> None:
        name = _error_name(exc)
        self.write_errors[name] = self.write_errors.get(name, 0) + 1

    def _disk_failed(self, exc: OSError) -> None:
        now = time.monotonic()
        if self.disk_problem is None:
            self._problem_since = now
            log.warning(
                "spool %s: cannot write to the disk (%s); new records are held in memory (at most %d bytes, the "
                "oldest dropped and counted beyond that) and the disk is tried again every %.0f s",
                self.directory,
                exc.strerror or exc,
                self.memory_max_bytes,
                self.disk_retry_s,
            )
        self.disk_problem = f"{exc.strerror or exc}"
        self._retry_at = now + self.disk_retry_s

    def _disk_recovered(self) -> None:
        held = sum(len(s.offsets) for s in self._segments if s.path is None)
        log.info(
            "spool %s: writing to the disk again after %.1f s of %r; the %d record(s) held in memory meanwhile "
            "are delivered first",
            self.directory,
            time.monotonic() - self._problem_since,
            self.disk_problem,
            held,
        )
        self.disk_problem = None

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
                if seg.data is not None:
                    data = bytes(seg.data[start:stop])
                else:
                    assert seg.path is not None
                    try:
                        with seg.path.open("rb") as fh:
                            fh.seek(start)
                            data = fh.read(stop - start)
                    except OSError as exc:
                        self._unreadable(seg, first, exc)
                        return out
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
        self.torn += 1
        self._cut(seg, index, "corrupt record")

    def _unreadable(self, seg: _Segment, index: int, exc: OSError) -> None:
        """A segment cannot be read (an I/O error): its undelivered records are lost, counted."""
        self._count_error(exc)
        self._cut(seg, index, f"cannot read it ({exc.strerror or exc})")

    def _cut(self, seg: _Segment, index: int, why: str) -> None:
        lost = len(seg.offsets) - index
        self.dropped += lost
        self._depth -= lost
        log.warning(
            "spool %s: %s in %s at byte %d; %d record(s) from there on are dropped, %d since start",
            self.directory,
            why,
            seg.name,
            seg.offsets[index],
            lost,
            self.dropped,
        )
        seg.size = seg.offsets[index]
        del seg.offsets[index:]
        if seg is self._writing:
            self._close_writer()
        if seg.path is not None:
            with contextlib.suppress(OSError), seg.path.open("r+b") as fh:
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
                self._discard(seg)
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
            self._discard(self._segments.pop(0))
            self._head = 0

    def _discard(self, seg: _Segment) -> None:
        """Forget a segment taken off the list (its file deleted, when it has one)."""
        if seg is self._writing:
            self._close_writer()
        if seg.path is not None:
            try:
                seg.path.unlink(missing_ok=True)
            except OSError as exc:
                self._state_failed(f"cannot delete {seg.path}", exc)

    def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
        self._writer, self._writing = None, None

    # -- state ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Undelivered records (on disk and held in memory)."""
        return self._depth

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk."""
        return sum(s.size for s in self._segments if s.path is not None)

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory because the disk could not take them."""
        return sum(s.size for s in self._segments if s.path is None)

    def close(self) -> None:
        """Release the directory (undelivered records on disk stay for the next process; those held in
        memory are lost, and counted in `dropped`)."""
        with self._lock:
            self._close_writer()
            held = sum(
                len(s.offsets) - (self._head if k == 0 else 0) for k, s in enumerate(self._segments) if s.path is None
            )
            if held:
                self.dropped += held
                self._depth -= held
                log.warning(
                    "spool %s: the %d undelivered record(s) held in memory (the disk could not take them) are "
                    "lost at close, %d dropped since start",
                    self.directory,
                    held,
                    self.dropped,
                )
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
        self.write_errors: dict[str, int] = {}  # never written to a disk
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

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        if self._records:
            log.warning("memory spool: %d undelivered record(s) lost at close", len(self._records))
