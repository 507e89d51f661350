"""Shared pieces of the reliability scenarios: worker start-up on free ports, exact sample accounting
(stored, duplicated, lost against what was sent) and a place to write each run's figures."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from kcloud.records import NodeSnapshot
from kcloud.settings import Settings
from streams.launcher import WorkerProcess

__all__ = ["FIGURES_DIR", "SampleCount", "count_samples", "free_port", "record_figures", "start_worker"]

ROOT = Path(__file__).resolve().parents[2]
#: each scenario writes the figures of its last run here (RELIABILITY.md quotes them)
FIGURES_DIR = ROOT / ".kcloud" / "reliability"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_worker(settings: Settings, log_dir: Path, name: str = "worker") -> WorkerProcess:
    """A `kcloud streams worker` child process on a free web port, its log under `log_dir`."""
    port = free_port()
    return WorkerProcess(settings, log_dir / f"{name}-{port}.log", web_port=port).start(timeout=90)


@dataclass(frozen=True)
class SampleCount:
    """What reached `device_samples` compared with what was sent."""

    sent: int
    stored: int
    distinct: int
    duplicated: int
    lost: int
    unexpected: int


def count_samples(url: str, snapshots: list[NodeSnapshot]) -> SampleCount:
    """Exact accounting: every (device, time) sent must be stored once, and nothing else."""
    sent = {(d.device_uuid, d.subdevice or "", s.collected_at) for s in snapshots for d in s.devices}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.device_uuid, coalesce(d.subdevice, ''), s.time, count(*) "
            "FROM device_samples s JOIN devices d USING (device_id) GROUP BY 1, 2, 3"
        ).fetchall()
    stored = {(uuid, sub, at): int(n) for uuid, sub, at, n in rows}
    return SampleCount(
        sent=len(sent),
        stored=sum(stored.values()),
        distinct=len(stored),
        duplicated=sum(n - 1 for n in stored.values()),
        lost=len(sent - stored.keys()),
        unexpected=len(stored.keys() - sent),
    )


def record_figures(scenario: str, figures: dict[str, object]) -> None:
    """Write a scenario's figures as JSON (best effort: a read-only checkout only loses the record)."""
    try:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        out = {k: asdict(v) if isinstance(v, SampleCount) else v for k, v in figures.items()}
        (FIGURES_DIR / f"{scenario}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    except OSError:
        pass
