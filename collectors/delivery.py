"""The delivery thread behind `SnapshotProducer`: it alone owns the kafka-python producer and the spool,
and decides, record by record and in arrival order, whether a record is sent now or spooled.

States: *connecting* (no producer yet: records spool), *direct* (records are sent as they arrive),
*degraded* (a send failed or the broker is gone: records spool, behind every older record) and
*replaying* (the spool is sent in order, one chunk at a time, and a record is removed only after its
acknowledgement; new records keep spooling behind it). The empty spool switches back to direct.

Kafka that answers but acknowledges more slowly than the source produces is handled like a short
outage, so that memory stays bounded: once more than `max_backlog_bytes` of submitted records wait for
this thread, new records go to the (bounded) spool behind the ones in flight, and are replayed from
there; the producer is kept.

Ordering across a failure: when a direct send fails, later direct sends may still be unresolved, so
records arriving meanwhile are *held*; once every direct send has resolved, the failed ones go to the
spool in their original order, then the held ones. kafka-python can leave sends unresolved while the
broker is away (an idempotent producer waits for its sequence state to be reset); after
`delivery_timeout_s` plus a grace period those sends are abandoned together with that producer, which
is closed so that it can never deliver them later, and spooled. Each failure episode retires its
producer: the replay starts on a fresh one (new producer id, fresh sequence numbers).

Everything reaches this thread as an event on one queue (a submitted record, an acknowledgement, a
failure, a finished connection attempt), so kafka-python's callbacks never take a lock of ours.
"""

from __future__ import annotations

import itertools
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from collectors.metrics import AgentMetrics
from collectors.spool import RecordId, SpoolLike

__all__ = ["MAX_BACKLOG_BYTES", "Delivery", "decode_record", "encode_record"]

log = logging.getLogger("kcloud.collectors.producer")

_KEY_LEN = struct.Struct(">i")
_REPLAY_RECORDS = 2000
_REPLAY_BYTES = 4 * 2**20
_MAX_BACKOFF_S = 10.0
_GRACE_S = 2.0
_EVENTS_PER_STEP = 50_000
MAX_BACKLOG_BYTES = 256 * 2**20


def encode_record(key: bytes | None, value: bytes) -> bytes:
    """A spool record: key length (-1 for none), key, value."""
    return _KEY_LEN.pack(-1 if key is None else len(key)) + (key or b"") + value


def decode_record(record: bytes) -> tuple[bytes | None, bytes]:
    """The (key, value) of a spool record."""
    (n,) = _KEY_LEN.unpack_from(record)
    if n < 0:
        return None, record[_KEY_LEN.size :]
    return record[_KEY_LEN.size : _KEY_LEN.size + n], record[_KEY_LEN.size + n :]


def close_quietly(producer: KafkaProducer, timeout: float = 1.0) -> None:
    """Close a kafka-python producer, abandoning what it still holds (that was spooled already)."""
    try:
        producer.close(timeout=timeout)
    except Exception:  # its close() raises when its own flush times out, leaving the sender running
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()


@dataclass
class _Pending:
    key: bytes | None
    value: bytes
    sent_at: float = 0.0
    spool_id: RecordId | None = None  # set for a replayed record


class Delivery:
    """The thread and its state; `SnapshotProducer` is its public face."""

    def __init__(
        self,
        topic: str,
        bootstrap: str,
        *,
        make_producer: Callable[[], KafkaProducer],
        spool: SpoolLike,
        metrics: AgentMetrics | None,
        delivery_timeout_s: float,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
    ) -> None:
        self.topic, self.bootstrap, self.spool, self.metrics = topic, bootstrap, spool, metrics
        self.max_backlog_bytes = max_backlog_bytes
        self._submitted_bytes = 0  # written by submitters under _cond; read here without it
        self._accepted_bytes = 0  # this thread only
        self._make_producer = make_producer
        self._give_up_after = delivery_timeout_s + _GRACE_S
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = self._processed = 0  # guarded by _cond
        self._idle, self.closing = True, False
        self.producer: KafkaProducer | None = None
        self.direct = self.connecting = self._retire = False
        self._tokens = itertools.count()
        self._inflight: dict[int, _Pending] = {}  # direct sends awaiting their acknowledgement
        self._failed: list[tuple[int, _Pending]] = []
        self._held: list[_Pending] = []  # arrived while failed direct sends were still unresolved
        self._to_spool: list[bytes] = []
        self._replay: dict[int, _Pending] = {}
        self._replay_ok: set[int] = set()
        self._replay_bad: set[int] = set()
        self._skip: set[RecordId] = set()  # delivered out of order in a broken replay chunk
        self._replay_size = 1
        self._next_attempt = 0.0
        self._give_up_at: float | None = None
        self._backoff = 0.5
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._run, name="kcloud-delivery", daemon=True)
        self._thread.start()

    # -- called from other threads ----------------------------------------------------------------
    def submit(self, key: bytes | None, value: bytes) -> None:
        with self._cond:
            if self.closing:
                raise RuntimeError("SnapshotProducer is closed")
            self._submitted += 1
            self._submitted_bytes += len(value)
            self._idle = False
        self._events.put(("submit", _Pending(key, value)))

    def submit_many(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """`submit` each record, in order, as one event."""
        with self._cond:
            if self.closing:
                raise RuntimeError("SnapshotProducer is closed")
            self._submitted += len(records)
            self._submitted_bytes += sum(len(value) for _, value in records)
            self._idle = False
        self._events.put(("submit_many", [_Pending(key, value) for key, value in records]))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far is acknowledged; False after `timeout` seconds."""
        with self._cond:
            target = self._submitted
        self._events.put(("wake",))
        with self._cond:
            return self._cond.wait_for(lambda: self._processed >= target and self._idle, timeout)

    def pending(self) -> int:
        with self._cond:
            queued = self._submitted - self._processed
        unresolved = len(self._inflight) + len(self._failed) + len(self._held)
        return queued + unresolved + len(self._to_spool) + len(self.spool)

    def stop(self) -> None:
        """Stop the thread; unresolved sends are spooled (they may arrive twice, never not at all)."""
        with self._cond:
            self.closing = True
        self._events.put(("stop",))
        self._thread.join()
        while True:  # a connection made while stopping
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "connected" and isinstance(event[1], KafkaProducer):
                close_quietly(event[1])
        if self.producer is not None:
            close_quietly(self.producer, timeout=0)  # abandon what it holds: that is in the spool
            self.producer = None
        # records dropped for room while this replay had them: lost unless they were acknowledged
        acked = {item.spool_id for token, item in self._replay.items() if token in self._replay_ok}
        self.spool.settle_lent({rid for rid in acked if rid is not None} | self._skip)

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            if self.direct or self.connecting or self._replay or self._inflight:
                wait = 1.0  # an acknowledgement or a connection wakes the loop
            else:
                wait = min(max(self._next_attempt - time.monotonic(), 0.01), 1.0)
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                event = ("wake",)
            stop = self._handle(event)
            for _ in range(_EVENTS_PER_STEP - 1):  # drain what is queued, then one step of the state machine
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
                stop = self._handle(event) or stop
            try:
                self._give_up_if_stuck(force=stop)
                self._settle()
                self._spool_pending()
                if not stop:
                    self._advance()
            except Exception as exc:  # a bug here must not stop delivery silently
                log.exception("kafka %s: delivery step failed", self.bootstrap)
                self._degrade(f"delivery step failed: {exc}")
            if self.metrics is not None:
                self.metrics.sync_spool()
            self._publish_idle()
            if stop:
                return

    def _handle(self, event: tuple[Any, ...]) -> bool:
        kind = event[0]
        if kind == "submit":
            self._accept(event[1])
            with self._cond:
                self._processed += 1
        elif kind == "submit_many":
            for item in event[1]:
                self._accept(item)
            with self._cond:
                self._processed += len(event[1])
        elif kind == "ack":
            self._on_ack(event[1])
        elif kind == "fail":
            self._on_fail(event[1], event[2])
        elif kind == "connected":
            self.connecting = False
            if isinstance(event[1], KafkaProducer):
                log.info("kafka %s: connected; producing to %s", self.bootstrap, self.topic)
                self.producer = event[1]
            else:
                self._degrade(event[1])
        return bool(kind == "stop")

    def _accept(self, item: _Pending) -> None:
        self._accepted_bytes += len(item.value)
        if self.direct and self._submitted_bytes - self._accepted_bytes > self.max_backlog_bytes:
            self._overloaded()
        if self.direct:
            self._send(item, self._inflight)
        elif self._inflight:
            self._held.append(item)
        else:
            self._to_spool.append(encode_record(item.key, item.value))

    def _send(self, item: _Pending, table: dict[int, _Pending]) -> None:
        assert self.producer is not None
        token = next(self._tokens)
        item.sent_at = time.monotonic()
        table[token] = item
        try:
            future = self.producer.send(self.topic, key=item.key, value=item.value)
        except Exception as exc:
            self._on_fail(token, exc)
            return
        future.add_callback(lambda _md, t=token: self._events.put(("ack", t)))
        future.add_errback(lambda exc, t=token: self._events.put(("fail", t, exc)))

    def _on_ack(self, token: int) -> None:
        item = self._inflight.pop(token, None)
        if item is None:
            item = self._replay.get(token)
            if item is None or token in self._replay_bad:
                return  # a send given up on earlier
            self._replay_ok.add(token)
        if self.metrics is not None:
            self.metrics.delivered.inc()
            self.metrics.produce_latency.observe(time.monotonic() - item.sent_at)

    def _on_fail(self, token: int, exc: BaseException) -> None:
        if token in self._replay:
            if token in self._replay_ok or token in self._replay_bad:
                return
            self._replay_bad.add(token)
        elif (item := self._inflight.pop(token, None)) is not None:
            self._failed.append((token, item))
        else:
            return  # a send given up on earlier
        if self.metrics is not None:
            self.metrics.delivery_failures.inc()
        self._degrade(f"{type(exc).__name__}: {exc}")

    def _overloaded(self) -> None:
        """Kafka answers, but more slowly than records arrive: spool behind what is in flight, keep the producer."""
        waiting = (self._submitted_bytes - self._accepted_bytes) / 2**20
        log.warning(
            "kafka %s: acknowledgements are slower than the source produces (%.0f MiB waiting); spooling on disk "
            "until it catches up",
            self.bootstrap,
            waiting,
        )
        self.direct, self.problem = False, f"overloaded: {waiting:.0f} MiB waiting"

    def _degrade(self, why: str) -> None:
        if self.direct or self.problem is None:
            log.warning(
                "kafka %s: cannot deliver to %s (%s); spooling snapshots until it is back",
                self.bootstrap,
                self.topic,
                why,
            )
        self.direct, self.problem, self._retire, self._replay_size = False, why, True, 1
        now = time.monotonic()
        if (self._inflight or self._replay) and self._give_up_at is None:
            self._give_up_at = now + self._give_up_after
        if self._next_attempt <= now:  # one back-off step per episode, not per failed record
            self._next_attempt = now + self._backoff
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)

    def _give_up_if_stuck(self, force: bool) -> None:
        """Abandon sends kafka-python has not resolved in time (or at stop), with their producer."""
        if not (self._inflight or self._replay):
            self._give_up_at = None
            return
        if not force and (self._give_up_at is None or time.monotonic() < self._give_up_at):
            return
        if not force:
            log.warning(
                "kafka %s: %d send(s) still unresolved %.0f s after the first failure; abandoning that "
                "producer and spooling them",
                self.bootstrap,
                len(self._inflight) + len(self._replay) - len(self._replay_ok | self._replay_bad),
                self._give_up_after,
            )
            if self.producer is not None:
                close_quietly(self.producer, timeout=0)
                self.producer = None
        self._failed.extend(self._inflight.items())
        self._inflight = {}
        self._replay_bad.update(t for t in self._replay if t not in self._replay_ok)
        self._give_up_at = None

    def _settle(self) -> None:
        """Once no direct send is unresolved, failed sends go to the spool in their original order, then
        the records that arrived meanwhile."""
        if self._inflight or not (self._failed or self._held):
            return
        self._failed.sort(key=lambda pair: pair[0])
        self._to_spool.extend(encode_record(item.key, item.value) for _, item in self._failed)
        self._to_spool.extend(encode_record(item.key, item.value) for item in self._held)
        self._failed, self._held = [], []

    def _spool_pending(self) -> None:
        if self._to_spool:
            if self.metrics is not None:
                self.metrics.spooled.inc(len(self._to_spool))
            self.spool.extend(self._to_spool)
            self._to_spool = []

    def _advance(self) -> None:
        """Connect, replay the spool chunk by chunk, and go direct once it is empty."""
        if self.direct or self._inflight or self.connecting:
            return
        if self._replay:
            if len(self._replay_ok) + len(self._replay_bad) >= len(self._replay):
                self._finish_replay()
            return
        if time.monotonic() < self._next_attempt:
            return
        if self._retire and self.producer is not None:
            close_quietly(self.producer, timeout=0)
            self.producer = None
        self._retire = False
        if self.producer is None:
            self._connect()
            return
        if not len(self.spool):
            if self.problem is not None:
                log.info("kafka %s: delivering to %s again; the spool is empty", self.bootstrap, self.topic)
            self.direct, self.problem, self._backoff = True, None, 0.5
            return
        peeked = self.spool.peek(self._replay_size, _REPLAY_BYTES)
        for rid, record in peeked:
            if rid not in self._skip:
                key, value = decode_record(record)
                self._send(_Pending(key, value, spool_id=rid), self._replay)
        if not self._replay and peeked:  # all of them were delivered in an earlier, broken chunk
            self._commit(peeked[-1][0])

    def _finish_replay(self) -> None:
        """A replay chunk is resolved: commit its acknowledged prefix; remember later successes."""
        prefix: RecordId | None = None
        broken = False
        for token, item in sorted(self._replay.items(), key=lambda pair: pair[0]):
            assert item.spool_id is not None
            if token in self._replay_ok and not broken:
                prefix = item.spool_id
            elif token in self._replay_ok:
                self._skip.add(item.spool_id)  # delivered, but after a failure: never send it again
            else:
                broken = True
        if prefix is not None:
            self._commit(prefix)
        self.spool.settle_lent(self._skip)
        self._replay, self._replay_ok, self._replay_bad = {}, set(), set()
        if broken:
            self._degrade(self.problem or "a replayed snapshot was not acknowledged")
        else:
            self._replay_size = min(self._replay_size * 4, _REPLAY_RECORDS)
            self._next_attempt = 0.0

    def _commit(self, upto: RecordId) -> None:
        self.spool.commit(upto)
        self._skip = {rid for rid in self._skip if rid > upto}

    def _connect(self) -> None:
        """Connect from a helper thread (bootstrapping blocks); it answers with a `connected` event."""
        self.connecting = True

        def attempt() -> None:
            try:
                producer = self._make_producer()
            except Exception as exc:
                self._events.put(("connected", f"no broker answers ({exc})"))
                return
            try:
                producer.partitions_for(self.topic)
            except Exception as exc:
                close_quietly(producer)
                why = f"topic {self.topic} is not available ({exc}); create it with `kcloud infra up`"
                self._events.put(("connected", why))
                return
            self._events.put(("connected", producer))

        threading.Thread(target=attempt, name="kcloud-connect", daemon=True).start()

    def _publish_idle(self) -> None:
        busy = self._inflight or self._replay or self._failed or self._held or self._to_spool
        with self._cond:
            self._idle = not busy and not len(self.spool) and self._processed >= self._submitted
            self._cond.notify_all()
