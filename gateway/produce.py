"""Producing accepted pushes to Kafka, answering only once Kafka has acknowledged them.

`KafkaGate.deliver(records)` sends every record (telemetry snapshots keyed by node_id, and the
dead letters of refused ones) with kafka-python (`acks=all`, idempotent) and waits for every
acknowledgement, up to `send_timeout_s`. Any failure (no broker, a send refused or not acknowledged in
time) raises `KafkaUnavailable`, and the gateway answers 503 with `Retry-After`: a push is answered 202
only when all of it is on Kafka. What a failed request did deliver may arrive again when the client
retries, which the ingest stage absorbs (it is idempotent per device and event time).

After a failure the producer is retired (closed, abandoning what it still holds) and the next request
builds a fresh one; for `cooldown_s` after a failure requests are refused at once rather than each
waiting out a timeout against a broker that is known to be away.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from kcloud.kafka_client import producer_config
from kcloud.settings import Settings

__all__ = ["KafkaGate", "KafkaUnavailable", "Record"]

log = logging.getLogger("gateway.produce")


class KafkaUnavailable(Exception):  # noqa: N818 -- reads as the condition it reports
    """Kafka did not acknowledge a request's records; `retry_after_s` is when to try again."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Record:
    """One Kafka record to deliver."""

    topic: str
    key: bytes | None
    value: bytes


def _producer_config(settings: Settings, send_timeout_s: float, connect_timeout_s: float) -> dict[str, Any]:
    """The project's producer configuration (`kcloud.kafka_client`), as the gateway: a short linger, room
    for the largest body, and an answer within `send_timeout_s`."""
    request_ms = max(int(send_timeout_s * 1000) // 2, 1000)
    connect_ms = max(int(connect_timeout_s * 1000), 500)
    return producer_config(
        settings,
        client_id="kcloud-gateway",
        compression="lz4",
        linger_ms=5,
        max_request_size=max(8 * 2**20, settings.gateway_max_body_bytes + 2**20),
        request_timeout_ms=request_ms,
        delivery_timeout_ms=request_ms + 10,
        max_block_ms=connect_ms,
        bootstrap_timeout_ms=connect_ms,
    )


def _close_quietly(producer: KafkaProducer) -> None:
    try:
        producer.close(timeout=0)
    except Exception:  # its close() raises when the flush times out, leaving the sender running
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()


class KafkaGate:
    """The gateway's one Kafka producer, shared by all requests (kafka-python's producer is thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        *,
        send_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        cooldown_s: float = 3.0,
        make_producer: Callable[[], KafkaProducer] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.send_timeout_s = send_timeout_s
        self.cooldown_s = cooldown_s
        config = _producer_config(settings, send_timeout_s, connect_timeout_s)
        self._make = make_producer or (lambda: KafkaProducer(**config))
        self._clock = clock
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._down_until = 0.0
        self.problem: str | None = None  # why the last delivery failed; None after a success

    def _retry_after(self) -> int:
        return max(1, math.ceil(self.cooldown_s))

    def _current(self) -> KafkaProducer:
        with self._lock:
            if self._producer is not None:
                return self._producer
            wait = self._down_until - self._clock()
            if wait > 0:
                raise KafkaUnavailable(
                    f"Kafka at {self.bootstrap} is unavailable ({self.problem})", max(1, math.ceil(wait))
                )
            try:
                self._producer = self._make()
            except Exception as exc:
                self._fail_locked(f"cannot connect: {exc or type(exc).__name__}")
                raise KafkaUnavailable(
                    f"Kafka at {self.bootstrap} is unavailable ({self.problem})", self._retry_after()
                ) from exc
            return self._producer

    def _fail_locked(self, problem: str) -> None:
        self.problem = problem
        self._down_until = self._clock() + self.cooldown_s

    def _retire(self, producer: KafkaProducer, problem: str) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
                threading.Thread(target=_close_quietly, args=(producer,), daemon=True).start()
            self._fail_locked(problem)
        log.warning(
            "gateway: Kafka at %s failed (%s); refusing pushes with 503 until it answers", self.bootstrap, problem
        )

    def deliver(self, records: Sequence[Record]) -> None:
        """Send every record and wait until Kafka has acknowledged all of them; raises `KafkaUnavailable`."""
        if not records:
            return
        producer = self._current()
        deadline = self._clock() + self.send_timeout_s
        try:
            futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
            for future in futures:
                future.get(timeout=max(0.1, deadline - self._clock()))
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._retire(producer, problem)
            raise KafkaUnavailable(
                f"Kafka at {self.bootstrap} did not acknowledge the push ({problem})", self._retry_after()
            ) from exc
        if self.problem is not None:
            log.info("gateway: Kafka at %s answers again", self.bootstrap)
            self.problem = None

    def status(self) -> str:
        """`ok`, or why the last delivery failed."""
        return "ok" if self.problem is None else f"unavailable: {self.problem}"

    def close(self, timeout: float = 5.0) -> None:
        """Flush and close the producer (at shutdown)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception:
                _close_quietly(producer)
