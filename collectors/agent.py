"""The node agent: read a telemetry source on an interval and hand one snapshot per node per tick to
Kafka (through the spooling `SnapshotProducer`) or, with `print_only`, to stdout as NDJSON.

Each tick reads the source once (`fetch` + `parse`), stamps the event time, takes the next `seq` of
this agent's monotonic counter (kept in the spool directory, so it survives a restart; a failed tick
takes no number, so a gap on the topic always means lost data) and queues the snapshot; queuing never
waits for Kafka. A tick whose source fails (connection refused, HTTP error, an HTML page, an empty
body, a CSV with the wrong columns: anything that yields no device) is skipped and counted; its reason
is logged once, naming the source, until the source recovers. A source that cannot work on this host
at all (`CollectorUnavailable`, e.g. no NVIDIA driver) stops the agent with that one-line reason, and
so does any failed tick under `once`. The spool's disk filling up or failing never stops it (the spool
and `SeqStore` degrade, see `collectors.spool`); at stop it logs its account: snapshots sampled (plus
those found in the spool at start) = delivered + left in the spool + dropped.

A tick's output is in wire form (`TickOutput`: key and JSON bytes per node), so that the simulator's
fast path (`SimSource`, `SimulatedFleet.tick_bytes`) needs no pydantic object per device.

Example:
    >>> source = CollectorSource(build_collector("prom", {"exporter": "dcgm", "file": page}),
    ...                          NodeRef(node_id="gpu-01", site_id="kt-cheonan"), origin=str(page))
    >>> Agent(source, settings, AgentOptions(once=True, print_only=True)).run()  # NDJSON on stdout
    0
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from pydantic import ValidationError

from collectors.base import INFO_REASONS, BaseCollector, CollectorError, CollectorUnavailable
from collectors.metrics import AgentMetrics
from collectors.producer import SnapshotProducer
from collectors.simulator import SimulatedFleet
from collectors.spool import Spool
from collectors.statefile import write_state
from kcloud.records import NodeRef, NodeSnapshot
from kcloud.settings import Settings

__all__ = [
    "Agent",
    "AgentError",
    "AgentOptions",
    "CollectorSource",
    "ReadingError",
    "SeqStore",
    "SimSource",
    "TickOutput",
    "TickSource",
    "explain_no_devices",
]

log = logging.getLogger("kcloud.collectors.agent")


class ReadingError(CollectorError):
    """This tick's reading was unusable (no device, invalid snapshot); the message names the source."""


class AgentError(Exception):
    """The agent stops: the message is the one line to show the operator."""


class SeqStore:
    """The agent's monotonic `seq`, persisted in `path` (the next value) so it survives a restart;
    in memory only when `path` is None."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._next = 0
        self._unsaved = False
        if path is not None and path.exists():
            try:
                self._next = int(path.read_text().strip())
            except ValueError as exc:
                raise AgentError(f"seq file {path} is corrupt ({exc}); remove it to restart at 0") from exc

    def next(self) -> int:
        """Take the next number (persisted before it is used; a disk that refuses it does not stop the
        count, it is logged once and persisted again as soon as the disk takes it)."""
        value = self._next
        self._next += 1
        if self.path is not None:
            error = write_state(self.path, f"{self._next}\n")
            if error is not None and not self._unsaved:
                log.warning(
                    "seq file %s cannot be written (%s); counting on in memory; if the agent restarts before "
                    "the disk takes it again, seq numbers after %d repeat",
                    self.path,
                    error.strerror or error,
                    value,
                )
            elif error is None and self._unsaved:
                log.info("seq file %s is written again (next seq %d)", self.path, self._next)
            self._unsaved = error is not None
        return value


@dataclass(frozen=True)
class TickOutput:
    """One tick's snapshots in wire form: (key = node_id, value = `NodeSnapshot.to_json_bytes()`) per node,
    and how many device samples they hold."""

    records: list[tuple[bytes, bytes]]
    samples: int

    @classmethod
    def of(cls, snapshots: list[NodeSnapshot]) -> TickOutput:
        """The wire form of validated snapshots."""
        records = [(s.node.node_id.encode(), s.to_json_bytes()) for s in snapshots]
        return cls(records, sum(len(s.devices) for s in snapshots))


class TickSource(Protocol):
    """What the agent reads: `read` returns this tick's snapshots, calling `next_seq` only on success."""

    @property
    def source(self) -> str: ...

    def read(self, at: datetime, next_seq: Callable[[], int]) -> TickOutput: ...

    def close(self) -> None: ...


def explain_no_devices(source: str, origin: str, raw: Any, problems: dict[str, int], first: dict[str, str]) -> str:
    """Why a reading gave no device sample, in one line naming the source and where it read."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw if isinstance(raw, str) else None
    if text is not None and not text.strip():
        return f"{source}: {origin} returned an empty body; is the exporter still starting, or the path wrong?"
    if text is not None and text.lstrip()[:1] == "<":
        head = text.lstrip().splitlines()[0][:80]
        return f"{source}: {origin} returned an HTML page, not metrics ({head!r}); check the URL path"
    faults = {r: n for r, n in problems.items() if r not in INFO_REASONS}
    if faults:
        reason = max(faults, key=lambda r: faults[r])
        return f"{source}: no device samples in {origin}: {reason} x{faults[reason]} (first: {first.get(reason, '')})"
    if source.startswith("prom:") and text is not None:
        return (
            f"{source}: {origin} has no device metric that the {source.removeprefix('prom:')!r} map knows; "
            "check --map, or whether the exporter sees any accelerator"
        )
    return f"{source}: {origin} reported no accelerators"


class CollectorSource:
    """One collector on one node: one snapshot per tick."""

    def __init__(
        self,
        collector: BaseCollector[Any],
        node: NodeRef,
        origin: str,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.collector = collector
        self.node = node
        self.origin = origin
        self.metrics = metrics

    @property
    def source(self) -> str:
        return self.collector.source

    def read(self, at: datetime, next_seq: Callable[[], int]) -> TickOutput:
        raw = self.collector.fetch()
        samples = self.collector.parse(raw)
        stats = self.collector.last_stats
        if self.metrics is not None:
            for reason, n in stats.problems.items():
                if reason not in INFO_REASONS:
                    self.metrics.lines_skipped.labels(source=self.source, reason=reason).inc(n)
        if not samples:
            raise ReadingError(
                explain_no_devices(self.source, self.origin, raw, dict(stats.problems), stats.first_detail)
            )
        try:
            snapshot = NodeSnapshot(
                node=self.node, source=self.source, collected_at=at, seq=next_seq(), devices=samples
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise ReadingError(f"{self.source}: {self.origin} gave an invalid snapshot: {first['msg']}") from exc
        return TickOutput.of([snapshot])

    def close(self) -> None:
        self.collector.close()


class SimSource:
    """The simulated fleet: the snapshot of every online node each tick, all with the tick's `seq`, built
    by the simulator's wire fast path (the same bytes as `SimulatedFleet.tick`, without pydantic objects)."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self.fleet = fleet

    @property
    def source(self) -> str:
        return "sim"

    def read(self, at: datetime, next_seq: Callable[[], int]) -> TickOutput:
        records = self.fleet.tick_bytes(at, next_seq())
        return TickOutput(records, len(records) * self.fleet.devices_per_node)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class AgentOptions:
    """How the agent runs (the CLI's shared options)."""

    interval_s: float = 10.0
    once: bool = False
    print_only: bool = False
    spool_dir: Path | None = None
    spool_max_bytes: int = 128 * 2**20
    metrics_port: int | None = None
    kafka_timeout_s: float = 30.0
    compression: str = "auto"
    max_ticks: int | None = None


class Agent:
    """Runs one `TickSource` until stopped (see the module docstring)."""

    def __init__(
        self,
        source: TickSource,
        settings: Settings,
        options: AgentOptions,
        out: TextIO | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.options = options
        self.out = out if out is not None else sys.stdout
        self.metrics = metrics or AgentMetrics()
        self.producer: SnapshotProducer | None = None
        self.seq = SeqStore(None)
        self.ticks_ok = 0
        self.ticks_skipped = 0
        self.snapshots_sampled = 0
        self.spooled_at_start = 0
        self._last_problem: str | None = None

    def start(self) -> None:
        """Open the spool and the producer (not in print mode) and the metrics port."""
        opts = self.options
        if not opts.print_only:
            if opts.spool_dir is None:
                raise AgentError("a spool directory is needed to send to Kafka (--spool-dir)")
            spool = Spool(opts.spool_dir, opts.spool_max_bytes)
            self.spooled_at_start = len(spool)
            try:
                self.producer = SnapshotProducer(
                    self.settings,
                    spool=spool,
                    metrics=self.metrics,
                    delivery_timeout_s=opts.kafka_timeout_s,
                    compression=opts.compression,
                )
            except ValueError as exc:
                spool.close()
                raise AgentError(f"kafka producer: {exc}") from exc
            self.seq = SeqStore(opts.spool_dir / "seq")
        if opts.metrics_port is not None:
            try:
                self.metrics.serve(opts.metrics_port)
            except OSError as exc:
                raise AgentError(
                    f"cannot serve metrics on port {opts.metrics_port}: {exc.strerror or exc}; choose a free "
                    "--metrics-port"
                ) from exc

    def tick(self) -> int:
        """Read once and queue (or print) the snapshots; returns how many (0 when skipped).

        Raises `AgentError` for an unavailable source, and for any failure under `once`.
        """
        at = datetime.now(UTC)
        src = self.source.source
        try:
            output = self.source.read(at, self.seq.next)
        except CollectorUnavailable as exc:
            raise AgentError(str(exc)) from exc
        except CollectorError as exc:
            self.ticks_skipped += 1
            self.metrics.ticks.labels(source=src, outcome="skipped").inc()
            if self.options.once:
                raise AgentError(str(exc)) from exc
            if str(exc) != self._last_problem:
                log.warning("%s (tick skipped; repeats are counted, not logged)", exc)
            self._last_problem = str(exc)
            return 0
        if self._last_problem is not None:
            log.info("%s: reading again after %d skipped tick(s)", src, self.ticks_skipped)
            self._last_problem = None
        self.ticks_ok += 1
        self.snapshots_sampled += len(output.records)
        self.metrics.ticks.labels(source=src, outcome="ok").inc()
        self.metrics.snapshots.labels(source=src).inc(len(output.records))
        self.metrics.samples_read.labels(source=src).inc(output.samples)
        if self.producer is not None:
            self.producer.send_records(output.records)
        else:
            self.out.writelines(value.decode() + "\n" for _, value in output.records)
            self.out.flush()
        return len(output.records)

    def run(self, stop: threading.Event | None = None) -> int:
        """Tick every `interval_s` until `stop` is set (or once); returns the exit status (0 = fine).

        Raises `AgentError` when the agent cannot go on (the CLI prints it as one line).
        """
        stop = stop or threading.Event()
        opts = self.options
        try:
            self.start()
            due = time.monotonic()
            ticks = 0
            while not stop.is_set():
                self.tick()
                ticks += 1
                if opts.once or (opts.max_ticks is not None and ticks >= opts.max_ticks):
                    break
                due += opts.interval_s
                late = time.monotonic() - due
                if late > 0:
                    missed = int(late // opts.interval_s) + 1
                    log.warning("%s: a tick took too long; %d tick slot(s) skipped", self.source.source, missed)
                    due += missed * opts.interval_s
                stop.wait(max(0.0, due - time.monotonic()))
        finally:
            delivered = self.close()
        if not delivered:
            raise AgentError(
                f"kafka {self.settings.kafka_bootstrap}: not every snapshot was acknowledged within "
                f"{opts.kafka_timeout_s:.0f} s; they stay in the spool {opts.spool_dir} for the next run"
            )
        return 0

    def close(self) -> bool:
        """Flush and stop; True when everything produced was acknowledged (always, in print mode)."""
        delivered = True
        self.source.close()
        if self.producer is not None:
            wait = self.options.kafka_timeout_s if self.options.once else min(self.options.kafka_timeout_s, 5.0)
            delivered = self.producer.close(timeout=wait)
            left = self.producer.pending()
            self.metrics.sync_spool()
            log.info(
                "%s: stopped after %d tick(s): %d snapshot(s) sampled + %d found in the spool at start = "
                "%d delivered + %d left in the spool + %d dropped",
                self.source.source,
                self.ticks_ok,
                self.snapshots_sampled,
                self.spooled_at_start,
                self.metrics.value("delivered_total"),
                left,
                self.metrics.value("spool_dropped_total"),
            )
            self.producer = None
        self.metrics.stop_serving()
        return delivered or not self.options.once
