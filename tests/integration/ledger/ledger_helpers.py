"""Helpers of the ledger tests: events, signed appends, the CLI run against one test database, tampering
the way only a superuser can."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner

from console.main import app
from kcloud.ledger import LedgerSigner, append_events
from kcloud.records import DeploymentEvent

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def events(n: int, start: int = 0, details: dict[str, Any] | None = None) -> list[DeploymentEvent]:
    kinds = ["commissioned", "active", "idle", "offline", "returned"]
    return [
        DeploymentEvent(
            device_uuid=f"rngd-{i % 3:04d}",
            vendor="furiosa",
            event=kinds[i % len(kinds)],  # type: ignore[arg-type]
            at=T0 + timedelta(minutes=i),
            node_id="pangyo-n01",
            site_id="kt-pangyo",
            details=details if details is not None else {"i": i, "util_pct": 41.5, "note": "연구용 추론"},
        )
        for i in range(start, start + n)
    ]


def key_file(tmp_path: Path) -> Path:
    """The signing key the CLI of these tests uses (its default under the test's state dir)."""
    return tmp_path / "state" / "keys" / "ledger-ed25519.pem"


def append(url: str, tmp_path: Path, evs: list[DeploymentEvent], device_ids: dict[str, int] | None = None) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        append_events(conn, evs, device_ids or {}, signer=LedgerSigner.from_file(key_file(tmp_path)))


def cli(url: str, tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    environ = {"KCLOUD_DATABASE_URL": url, "KCLOUD_STATE_DIR": str(tmp_path / "state"), **env}
    result = CliRunner().invoke(app, list(args), env=environ)
    return result.exit_code, result.output


def tamper(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the ledger the way only a superuser can: with the append-only triggers and FKs switched off."""
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql, params)


def seqs(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [int(r[0]) for r in conn.execute("SELECT seq FROM deployment_events ORDER BY seq").fetchall()]
