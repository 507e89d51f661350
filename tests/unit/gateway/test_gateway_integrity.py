"""The pieces behind the gateway's integrity rules, without a database: token expiry as the CLI reads
it, the audit spool (durable, replayed once, nothing dropped), the bounded health probe, and the
trusted-proxy setting."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.audit_spool import AuditSpool
from gateway.health import BoundedProbe
from gateway.tokens import BadExpiry, parse_expiry
from kcloud.settings import Settings, SettingsError, load_settings

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def test_expiry_reads_durations_dates_times_and_never() -> None:
    assert parse_expiry("90d", NOW) == NOW + timedelta(days=90)
    assert parse_expiry("12h", NOW) == NOW + timedelta(hours=12)
    assert parse_expiry("2w", NOW) == NOW + timedelta(weeks=2)
    assert parse_expiry("2027-06-30", NOW) == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_expiry("2027-06-30T18:00:00+09:00", NOW) == datetime(2027, 6, 30, 9, tzinfo=UTC)
    assert parse_expiry("never", NOW) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("soon", "is not a duration"),
        ("0d", "longer than zero"),
        ("2026-12-31", "not in the future"),
        ("5y", "is not a duration"),
    ],
)
def test_a_bad_expiry_says_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(BadExpiry, match=says):
        parse_expiry(text, NOW)


def _row(i: int) -> dict[str, Any]:
    return {"request_id": f"00000000-0000-4000-8000-{i:012d}", "status": 503}


def test_the_spool_keeps_rows_0600_and_empties_only_after_a_successful_replay(tmp_path: Path) -> None:
    path = tmp_path / "gw" / "spool.jsonl"
    spool = AuditSpool(path)
    for i in range(3):
        spool.append(_row(i))
    assert path.stat().st_mode & 0o777 == 0o600 and spool.pending

    def broken(rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("database away")

    with pytest.raises(RuntimeError):
        spool.replay(broken)
    assert len(path.read_text().splitlines()) == 3, "a failed replay must keep every row"

    stored: list[dict[str, Any]] = []
    assert AuditSpool(path).pending, "rows kept by an earlier process are found at start-up"
    assert spool.replay(stored.extend) == 3
    assert stored == [_row(0), _row(1), _row(2)] and path.read_text() == "" and not spool.pending
    assert spool.replay(stored.extend) == 0 and len(stored) == 3


def test_a_torn_line_is_moved_aside_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = AuditSpool(path)
    spool.append(_row(1))
    with path.open("a") as fh:
        fh.write('{"request_id": "00000000-0000-4000-8000-0000000')  # a crash in the middle of a write
    stored: list[dict[str, Any]] = []
    assert AuditSpool(path).replay(stored.extend) == 1
    assert stored == [_row(1)]
    assert (tmp_path / "spool.jsonl.bad").read_text().startswith('{"request_id": "00000000')


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool.jsonl")
    threads = [
        threading.Thread(target=lambda k=k: [spool.append(_row(k * 100 + i)) for i in range(50)]) for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [json.loads(line)["request_id"] for line in (tmp_path / "spool.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 200


def test_a_hanging_check_is_answered_within_the_timeout_and_not_started_twice() -> None:
    release = threading.Event()
    calls = []

    def hangs() -> str:
        calls.append(1)
        release.wait(10)
        return "ok"

    probe = BoundedProbe("database", hangs)

    async def ask() -> list[str]:
        return [await probe.status(0.2) for _ in range(3)]

    started = time.monotonic()
    answers = asyncio.run(ask())
    took = time.monotonic() - started
    assert answers == ["unavailable: no answer within 0.2 s"] * 3
    assert took < 5 and len(calls) == 1
    release.set()
    time.sleep(0.1)
    assert asyncio.run(probe.status(1.0)) == "ok" and len(calls) == 2


def test_a_failing_check_is_reported_with_its_error() -> None:
    def fails() -> str:
        raise OSError("connection refused")

    assert asyncio.run(BoundedProbe("database", fails).status(1.0)) == "unavailable: OSError: connection refused"


def test_trusted_proxies_are_normalised_and_a_bad_one_is_refused() -> None:
    s = Settings(gateway_trusted_proxies=" 10.0.0.1, 192.168.0.0/16 ,")
    assert s.gateway_trusted_proxy_list == ["10.0.0.1/32", "192.168.0.0/16"]
    assert Settings().gateway_trusted_proxy_list == []
    with pytest.raises(SettingsError, match=r"'proxy\.example' is not an IP address or CIDR network"):
        load_settings(overrides={"gateway_trusted_proxies": "proxy.example"})
