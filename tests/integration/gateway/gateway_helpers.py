"""Helpers of the gateway integration tests: a `kcloud gateway` child process on a free port, snapshot
builders (dated a little before now: the gateway refuses times outside the accepted window), a way to
register nodes and devices as the ingest does, and a reader of what really arrived on a Kafka topic."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer

from gateway.registry import create_token
from kcloud.db.connect import connect
from kcloud.records import parse_snapshot
from kcloud.settings import Settings
from streams.launcher import settings_env
from streams.sink import SampleSink

ROOT = Path(__file__).resolve().parents[3]
KCLOUD = ROOT / ".venv" / "bin" / "kcloud"

__all__ = [
    "ROOT",
    "GatewayProcess",
    "audit_rows",
    "consume",
    "issue",
    "ndjson",
    "register",
    "snapshot",
    "snapshot_time",
]

#: the instant of seq 0: an hour before the tests started, on a whole minute (seq n is n seconds later)
BASE_TIME = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayProcess:
    """`kcloud gateway --host 127.0.0.1 --port P` as a child process, with the environment of `settings`."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        # audit rows the database does not take are kept next to the log, not in the shared state dir
        if settings.gateway_audit_spool is None:
            settings = settings.model_copy(update={"gateway_audit_spool": log_path.with_suffix(".audit-spool.jsonl")})
        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        cmd = [str(KCLOUD), "gateway", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "info"]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=settings_env(self.settings), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gateway did not answer within {timeout:.0f}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(timeout=10)
        return self.proc.returncode

    def push(self, token: str, body: bytes, content_type: str = "application/x-ndjson") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        return httpx.post(f"{self.url}/v1/telemetry", content=body, headers=headers, timeout=60)


def issue(settings: Settings, vendor: str | None, role: str = "vendor", expires_at: datetime | None = None) -> str:
    """A new token of `vendor` (None for a program-manager token), through the registry as
    `kcloud vendor token create` does."""
    with connect(settings.effective_database_url) as conn:
        return create_token(conn, vendor, role=role, label="test", expires_at=expires_at).text


def snapshot_time(seq: int) -> datetime:
    """The `collected_at` of `snapshot(..., seq=seq)`: distinct seqs (below 3,600) are distinct instants, all
    inside the accepted window (at most an hour old, never ahead)."""
    return BASE_TIME + timedelta(seconds=seq % 3600)


def snapshot(
    node_id: str,
    seq: int = 1,
    vendor: str = "furiosa",
    devices: int = 2,
    source: str | None = None,
    *,
    site_id: str = "site-gw",
) -> dict[str, Any]:
    """A valid snapshot (synthetic values) of `devices` accelerators of `vendor`, dated `snapshot_time(seq)`."""
    return {
        "schema": "kcloud.telemetry/1",
        "node": {"node_id": node_id, "site_id": site_id, "hostname": f"{node_id}.example"},
        "source": source or f"push:{vendor}",
        "collected_at": snapshot_time(seq).isoformat(),
        "seq": seq,
        "devices": [
            {
                "device_uuid": f"{vendor}-{node_id}-{i}",
                "vendor": vendor,
                "kind": "gpu" if vendor in ("nvidia", "amd") else "npu",
                "model": "synthetic",
                "util_pct": 42.5,
                "power_w": 150.0,
                "temp_c": 55.0,
                "health": "ok",
            }
            for i in range(devices)
        ],
    }


def register(settings: Settings, *snaps: dict[str, Any]) -> None:
    """Store `snaps` as the stream ingest does (`streams.sink`): their nodes and devices are then registered
    to the vendor and site they name."""
    sink = SampleSink(settings)
    try:
        result = sink.write([parse_snapshot(json.dumps(s)) for s in snaps])
    finally:
        sink.close()
    assert not result.refused, result.refused


def ndjson(*snaps: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(s).encode() + b"\n" for s in snaps)


def consume(settings: Settings, topic: str, until: int, timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) on `topic` from the beginning, reading until `until` records or `timeout`."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
    )
    got: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < until and time.monotonic() < deadline:
            for message in consumer:
                got.append((message.key, message.value))
    finally:
        consumer.close()
    return got


def audit_rows(settings: Settings) -> list[dict[str, Any]]:
    """The ingest_audit rows, oldest first."""
    with connect(settings.effective_database_url) as conn:
        cur = conn.execute(
            "SELECT token_id, vendor_id, host(remote_addr) AS remote_addr, accepted, rejected, bytes, status "
            "FROM ingest_audit ORDER BY seq"
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
