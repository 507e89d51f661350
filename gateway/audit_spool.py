"""The gateway's audit rows that the database did not take, kept on disk until it takes them.

When an `ingest_audit` row cannot be written (the database is stopped, unreachable or too slow), the
gateway appends it to a JSONL file (`settings.gateway_audit_spool_path`: one JSON object a line, the
file mode 0600, each line fsynced before the answer leaves), and replays the file into `ingest_audit`
when the database answers again: at start-up and after the next row that is written. Every row carries
the request id it records (`ingest_audit.request_id`, unique) and is inserted with
`ON CONFLICT DO NOTHING`, so a replay that is interrupted after its commit and repeated stores nothing
twice. The file is emptied only after the replay's transaction has committed.

The file is locked (`flock`) while it is appended to or replayed, so gateway processes sharing a state
directory do not lose each other's rows. A line that cannot be read back (a torn write at a crash) is
moved to `<file>.bad` with an error in the log, never silently dropped.

Imports only the standard library; the database side is the `replay(insert)` callback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["AuditSpool"]

log = logging.getLogger("gateway.audit")


class AuditSpool:
    """A durable queue of audit rows (JSON-able dicts with a `request_id`) in one JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._pending = path.stat().st_size > 0
        except OSError:
            self._pending = False

    @property
    def pending(self) -> bool:
        """Whether rows may be waiting (cheap: no file access)."""
        return self._pending

    @contextlib.contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with self._lock, os.fdopen(fd, "r+b") as fh:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def append(self, row: dict[str, Any]) -> None:
        """Add one row, on disk (fsynced) when this returns; raises OSError when it cannot be kept."""
        line = json.dumps(row, separators=(",", ":"), default=str).encode() + b"\n"
        with self._locked() as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._pending = True

    def replay(self, insert: Callable[[list[dict[str, Any]]], None]) -> int:
        """Give every kept row to `insert` (which must store them all, in one transaction, or raise) and
        empty the file once it returns. Returns the rows given; an exception from `insert` leaves the file
        as it was."""
        with self._locked() as fh:
            fh.seek(0)
            rows: list[dict[str, Any]] = []
            bad: list[bytes] = []
            for number, raw in enumerate(fh.read().splitlines(), start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                    if not isinstance(row, dict) or not row.get("request_id"):
                        raise ValueError("not an audit row")
                except ValueError as exc:
                    log.error(
                        "gateway: audit spool %s line %d cannot be read (%s); moved to %s.bad",
                        self.path,
                        number,
                        exc,
                        self.path.name,
                    )
                    bad.append(raw)
                    continue
                rows.append(row)
            if rows:
                insert(rows)
            if bad:
                self._keep_bad(bad)
            fh.truncate(0)
            fh.flush()
            os.fsync(fh.fileno())
            self._pending = False
        return len(rows)

    def _keep_bad(self, lines: list[bytes]) -> None:
        bad_path = self.path.with_name(self.path.name + ".bad")
        fd = os.open(bad_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            out.write(b"".join(line + b"\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
