"""The latency probe of the end-to-end benchmark: how long after `collected_at` a sample can be queried.

A dedicated probe node (one device, its own node id, so it never collides with the fleet) sends a snapshot every
`every_s` seconds with `collected_at` = now, through the same producer settings as the collectors and the same
topic, so it queues behind the fleet's messages of its partition. A second thread polls the database for the
probe device's new rows (`device_samples` primary key: device, time) every `poll_s` seconds; a probe's latency is
the wall time of the first poll that sees its row minus its `collected_at` (both from this machine's clock), so
it is measured to within `poll_s` plus the poll's own duration.

Example:
    >>> probe = LatencyProbe(settings, every_s=0.5).start()
    >>> ...
    >>> probe.stop(); probe.latencies(since=window_start, until=window_end)
    [0.41, 0.38, ...]
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from kcloud.settings import Settings

__all__ = ["PROBE_PREFIX", "LatencyProbe", "ProbeStats", "percentile"]

PROBE_PREFIX = "bench-probe"


def percentile(values: list[float], q: float) -> float | None:
    """The `q`-th percentile (0-100, nearest rank) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class ProbeStats:
    """Probes sent, seen in the database, and their latencies keyed by `collected_at` (Unix time)."""

    sent: dict[float, int] = field(default_factory=dict)  # collected_at -> seq
    seen: dict[float, float] = field(default_factory=dict)  # collected_at -> latency in seconds
    poll_errors: int = 0


class LatencyProbe:
    """Sends probe snapshots and polls for their rows, each in its own thread, until `stop()`."""

    def __init__(self, settings: Settings, *, every_s: float = 0.5, poll_s: float = 0.05, seed: int = 1) -> None:
        from collectors.simulator import SimulatedFleet

        self.settings = settings
        self.every_s = every_s
        self.poll_s = poll_s
        self._fleet = SimulatedFleet(nodes=1, seed=seed, devices_per_node=1, node_prefix=PROBE_PREFIX)
        self.device_uuid = self._fleet.device_uuid(0, 0)
        self.stats = ProbeStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_error: str | None = None

    @property
    def samples_sent(self) -> int:
        """Device samples the probe has sent (one per probe)."""
        return len(self.stats.sent)

    def start(self) -> LatencyProbe:
        for target, name in ((self._send_loop, "probe-send"), (self._poll_loop, "probe-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop_sending(self) -> None:
        """Send no more probes (polling goes on until `stop`)."""
        self._stop.set()

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop sending; keep polling up to `drain_s` more seconds for probes not seen yet; then stop."""
        self._stop.set()
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.pending():
            time.sleep(self.poll_s)
        self._polling = False
        for thread in self._threads:
            thread.join(10)

    def pending(self) -> int:
        with self._lock:
            return len(self.stats.sent) - len(self.stats.seen)

    def latencies(
        self, since: float = 0.0, until: float = float("inf"), *, unseen_as_lower_bound: bool = False
    ) -> list[float]:
        """Latencies (seconds) of the probes collected in [since, until), Unix times. With
        `unseen_as_lower_bound`, a probe not stored yet counts with the time it has waited so far."""
        now = time.time()
        with self._lock:
            seen = [lat for at, lat in self.stats.seen.items() if since <= at < until]
            if unseen_as_lower_bound:
                seen += [now - at for at in self.stats.sent if since <= at < until and at not in self.stats.seen]
            return seen

    def sent_between(self, since: float = 0.0, until: float = float("inf")) -> int:
        with self._lock:
            return sum(1 for at in self.stats.sent if since <= at < until)

    # -- threads ------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        from collectors.producer import SnapshotProducer

        producer = SnapshotProducer(self.settings, delivery_timeout_s=120.0)
        seq = 0
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                at = datetime.now(UTC)
                snap = self._fleet.snapshot(0, at, seq)
                producer.send_raw(snap.to_json_bytes(), snap.node.node_id.encode())
                with self._lock:
                    self.stats.sent[at.timestamp()] = seq
                seq += 1
                next_at += self.every_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            producer.close(timeout=60)

    _polling = True

    def _poll_loop(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        device_id: int | None = None
        newest = datetime.fromtimestamp(0, UTC)
        while self._polling:
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.settings.effective_database_url, autocommit=True, connect_timeout=5)
                if device_id is None:
                    row = conn.execute(
                        "SELECT device_id FROM devices WHERE device_uuid = %s AND subdevice IS NULL",
                        (self.device_uuid,),
                    ).fetchone()
                    device_id = int(str(row[0])) if row is not None else None
                if device_id is not None:
                    rows = conn.execute(
                        "SELECT time FROM device_samples WHERE device_id = %s AND time > %s",
                        (device_id, newest),
                    ).fetchall()
                    now = time.time()
                    with self._lock:
                        for (when,) in rows:
                            assert isinstance(when, datetime)
                            at = when.timestamp()
                            if at in self.stats.sent and at not in self.stats.seen:
                                self.stats.seen[at] = now - at
                            newest = max(newest, when)
            except psycopg.Error as exc:
                self.stats.poll_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))
        if conn is not None:
            conn.close()
