"""Where checkpoints are kept outside the database: a file store and a Kafka topic kept for ever.

`kcloud ledger checkpoint` writes each checkpoint to both:
- the checkpoint store, `ledger_checkpoint_dir` (default `<state_dir>/checkpoints/`): one read-only file per
  checkpoint, never replaced (created with O_EXCL);
- the topic `kcloud.ledger-checkpoints.v1` (`kcloud.topics.LEDGER_CHECKPOINTS`, retention infinite), from
  which an auditor's own consumer keeps a copy.
`kcloud ledger verify` reads both (and any file an auditor names) and checks the ledger against every
checkpoint signed by the trusted key. May import kcloud.settings, kcloud.topics, kcloud.ledger.checkpoint
and kafka-python.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from kcloud.ledger.checkpoint import Checkpoint, CheckpointError, parse_checkpoint, read_checkpoint
from kcloud.ledger.keys import TrustedKeys, trusted_public_key
from kcloud.settings import Settings
from kcloud.topics import LEDGER_CHECKPOINTS

__all__ = [
    "KnownCheckpoints",
    "checkpoint_dir",
    "known_checkpoints",
    "publish_to_kafka",
    "read_kafka",
    "signing_key_path",
    "trusted_checkpoints",
    "trusted_key",
    "write_to_store",
]

#: how long a checkpoint command or verify waits for Kafka before saying it is unreachable
_KAFKA_TIMEOUT_MS = 8000


def signing_key_path(settings: Settings) -> Path:
    """The writer's private key file of these settings."""
    return settings.ledger_key_file or settings.state_dir / "keys" / "ledger-ed25519.pem"


def trusted_key(settings: Settings) -> TrustedKeys | None:
    """The public keys these settings trust, and where they came from (see `keys.trusted_public_key`)."""
    return trusted_public_key(settings.ledger_public_key_file, signing_key_path(settings))


def checkpoint_dir(settings: Settings) -> Path:
    """The checkpoint store of these settings."""
    return settings.ledger_checkpoint_dir or settings.state_dir / "checkpoints"


def write_to_store(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` as a new read-only file of the store (never replacing one); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = checkpoint.to_json()
    stamp = checkpoint.created_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = directory / f"cp-{checkpoint.row_count:012d}-{stamp}-{digest}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def publish_to_kafka(settings: Settings, checkpoint: Checkpoint) -> None:
    """Send `checkpoint` to the checkpoint topic and wait for every replica's acknowledgement."""
    from kafka import KafkaProducer

    from kcloud.kafka_client import producer_config

    producer = KafkaProducer(
        **producer_config(
            settings,
            client_id="kcloud-ledger",
            linger_ms=0,
            max_block_ms=_KAFKA_TIMEOUT_MS,
            bootstrap_timeout_ms=_KAFKA_TIMEOUT_MS,
        )
    )
    try:
        future = producer.send(
            settings.topic(LEDGER_CHECKPOINTS), key=checkpoint.ledger.encode(), value=checkpoint.to_json().encode()
        )
        future.get(timeout=_KAFKA_TIMEOUT_MS / 1000)
    finally:
        producer.close(timeout=5)


def read_kafka(settings: Settings) -> list[tuple[str, bytes]]:
    """Every message of the checkpoint topic, as (where, value); empty when the topic does not exist."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic(LEDGER_CHECKPOINTS)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        enable_auto_commit=False,
        group_id=None,
        bootstrap_timeout_ms=_KAFKA_TIMEOUT_MS,
        request_timeout_ms=_KAFKA_TIMEOUT_MS,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[str, bytes]] = []
        remaining = {tp for tp in tps if end[tp] > consumer.position(tp)}
        while remaining:
            batch = consumer.poll(timeout_ms=_KAFKA_TIMEOUT_MS)
            if not batch:
                raise TimeoutError(f"no messages of {topic} within {_KAFKA_TIMEOUT_MS / 1000:.0f} s")
            for tp, records in batch.items():
                out.extend((f"{topic}[{tp.partition}]@{r.offset}", r.value) for r in records)
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return out
    finally:
        consumer.close()


@dataclass
class KnownCheckpoints:
    """The checkpoints found, where each came from, and what could not be read."""

    found: list[tuple[str, Checkpoint]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def known_checkpoints(settings: Settings, files: list[Path], *, kafka: bool) -> KnownCheckpoints:
    """The checkpoints of the store, of the topic (when `kafka`) and of `files`. An unreadable document is a
    problem; Kafka being unreachable is a note (the store and the files are still checked)."""
    known = KnownCheckpoints()
    store = checkpoint_dir(settings)
    paths = sorted(store.glob("*.json")) if store.is_dir() else []
    for path in [*paths, *files]:
        try:
            known.found.append((str(path), read_checkpoint(path)))
        except CheckpointError as exc:
            known.problems.append(str(exc))
    if kafka:
        try:
            messages = read_kafka(settings)
        except Exception as exc:  # kafka-python raises plain Exception subclasses
            known.notes.append(
                f"Kafka ({settings.kafka_bootstrap}) not read: {str(exc) or type(exc).__name__}; "
                "checked the checkpoint store and the files given only"
            )
        else:
            for where, value in messages:
                try:
                    known.found.append((where, parse_checkpoint(value, where)))
                except CheckpointError as exc:
                    known.problems.append(str(exc))
    return known


def trusted_checkpoints(
    settings: Settings, files: list[Path], trusted: TrustedKeys | None, *, kafka: bool
) -> tuple[list[Checkpoint], list[str], list[str]]:
    """The known checkpoints (store, `files`, the Kafka topic when `kafka`) signed by `trusted`, the
    refusals (one sentence each: where, and why it is not trusted), and notes."""
    known = known_checkpoints(settings, files, kafka=kafka)
    good: list[Checkpoint] = []
    refused = list(known.problems)
    for where, cp in known.found:
        if trusted is None:
            refused.append(f"{where}: no trusted public key to check it under")
            continue
        try:
            cp.check_signature(trusted)
        except CheckpointError as exc:
            refused.append(f"{where}: {exc}")
        else:
            good.append(cp)
    return good, refused, known.notes
