"""The vendor gateway's integrity rules against real processes: a client forging X-Forwarded-For, a valid
vendor behind the same address as a client that keeps failing (one NAT), tokens that expire, `/healthz`
while PostgreSQL is frozen (SIGSTOP), and the audit trail of requests answered while PostgreSQL is
stopped.

The frozen and stopped PostgreSQL is a cluster of this module's own (state under
`.kcloud/test-rel-gw-pg`, a free port), since the scenarios stop it; the shared test cluster is never
touched. Kafka is the shared test broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from gateway_helpers import GatewayProcess, audit_rows, issue, ndjson, snapshot
from reliability_helpers import ROOT, free_port, record_figures

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.db.migrate import migrate
from kcloud.settings import Settings

pytestmark = pytest.mark.reliability

WRONG = "kc_0123456789ab_" + "x" * 43


def _post(gw: GatewayProcess, token: str | None, body: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/x-ndjson", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{gw.url}/v1/telemetry", content=body, headers=sent, timeout=60)


@pytest.fixture
def gw_settings(test_settings: Settings, kafka_up: KafkaService) -> Settings:
    migrate(test_settings.effective_database_url, test_settings)
    KafkaService(test_settings).ensure_topics()
    return test_settings


@pytest.fixture
def start(gw_settings: Settings, tmp_path: Path) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def go(settings: Settings | None = None, **overrides: Any) -> GatewayProcess:
        base = settings or gw_settings
        gw = GatewayProcess(base.model_copy(update=overrides), tmp_path / f"gateway-{len(started)}.log").start()
        started.append(gw)
        return gw

    yield go
    for gw in started:
        gw.stop()


def test_a_forged_x_forwarded_for_neither_dodges_the_limit_nor_reaches_the_audit(
    start: Any, gw_settings: Settings
) -> None:
    direct = start(gateway_auth_fail_burst=5)
    token = issue(gw_settings, "furiosa")
    started = time.monotonic()
    guesses = Counter(
        _post(direct, WRONG, b"{}", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(40)
    )
    took = time.monotonic() - started
    honest = _post(direct, token, ndjson(snapshot("xff-1")), **{"X-Forwarded-For": "198.51.100.250"})
    rows = audit_rows(gw_settings)
    forged = [r for r in rows if r["remote_addr"] != "127.0.0.1"]

    behind = start(gateway_trusted_proxies="127.0.0.1/32")
    proxied = _post(behind, token, ndjson(snapshot("xff-2")), **{"X-Forwarded-For": "203.0.113.9"})
    via_proxy = audit_rows(gw_settings)[len(rows) :]
    record_figures(
        "gateway_xff",
        {
            "forged_guesses": dict(guesses),
            "honest_push_with_forged_header": honest.status_code,
            "audit_rows": len(rows),
            "audit_rows_with_forged_address": len(forged),
            "trusted_proxy_push": proxied.status_code,
            "trusted_proxy_audit_addresses": [r["remote_addr"] for r in via_proxy],
        },
    )
    # one address: a burst of 5, then one failure per second, whatever the header says
    assert guesses[401] <= 5 + int(took) + 1 and guesses[429] == 40 - guesses[401], (dict(guesses), took)
    assert honest.status_code == 202, honest.text
    assert len(rows) == 41 and not forged, forged
    assert proxied.status_code == 202 and [r["remote_addr"] for r in via_proxy] == ["203.0.113.9"]


def test_a_client_failing_behind_a_nat_never_locks_out_a_valid_vendor_there(start: Any, gw_settings: Settings) -> None:
    gw = start(gateway_auth_fail_burst=5)
    token = issue(gw_settings, "rebellions")
    attacker: Counter[int] = Counter()
    vendor: Counter[int] = Counter()
    started = time.monotonic()
    for round_ in range(20):
        for i in range(10):
            attacker[_post(gw, WRONG, ndjson(snapshot("nat-x", seq=i))).status_code] += 1
        vendor[_post(gw, token, ndjson(snapshot("nat-1", seq=round_, vendor="rebellions"))).status_code] += 1
    took = time.monotonic() - started
    audited = Counter((r["token_id"] == token.split("_")[1], r["status"]) for r in audit_rows(gw_settings))
    record_figures(
        "gateway_nat_lockout",
        {
            "attacker": dict(attacker),
            "vendor": dict(vendor),
            "audit": {f"{k[0]}:{k[1]}": v for k, v in audited.items()},
        },
    )
    assert vendor == Counter({202: 20}), dict(vendor)
    assert attacker[401] <= 5 + int(took) + 1 and attacker[429] == 200 - attacker[401], (dict(attacker), took)
    assert audited[(True, 202)] == 20 and audited[(False, 429)] == attacker[429]


def test_expired_tokens_get_401_and_the_others_keep_working(start: Any, gw_settings: Settings) -> None:
    gw = start()
    soon = datetime.now(UTC) + timedelta(seconds=5)
    expiring = [issue(gw_settings, "furiosa", expires_at=soon) for _ in range(5)]
    lasting = [issue(gw_settings, "furiosa", expires_at=datetime.now(UTC) + timedelta(days=1)) for _ in range(5)]
    never = [issue(gw_settings, "furiosa") for _ in range(5)]
    before = Counter(_post(gw, t, ndjson(snapshot("exp-1"))).status_code for t in expiring + lasting + never)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    after_expired = [_post(gw, t, ndjson(snapshot("exp-1", seq=2))) for t in expiring]
    after_others = Counter(_post(gw, t, ndjson(snapshot("exp-1", seq=2))).status_code for t in lasting + never)
    reasons = Counter(a.json().get("error") for a in after_expired)
    record_figures(
        "gateway_expiry",
        {"before": dict(before), "expired_after": dict(reasons), "others_after": dict(after_others)},
    )
    assert before == Counter({202: 15}), dict(before)
    assert reasons == Counter({"expired_token": 5}), [a.text for a in after_expired]
    assert all(a.status_code == 401 and "expired at" in a.json()["message"] for a in after_expired)
    assert after_others == Counter({202: 10}), dict(after_others)
    assert Counter(r["status"] for r in audit_rows(gw_settings)) == Counter({202: 25, 401: 5})


# --- PostgreSQL of this module's own: frozen, then stopped ---------------------------------------------


@pytest.fixture
def own_postgres(base_settings: Settings) -> Iterator[PostgresService]:
    svc = PostgresService(
        base_settings.model_copy(update={"state_dir": ROOT / ".kcloud" / "test-rel-gw-pg", "pg_port": free_port()})
    )
    if svc.server_pid() is not None:
        svc.down()
    svc.up()
    try:
        yield svc
    finally:
        _thaw()
        svc.down()


@pytest.fixture
def own_settings(own_postgres: PostgresService, gw_settings: Settings) -> Iterator[Settings]:
    name = "relgw_" + uuid.uuid4().hex[:10]
    admin = own_postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = gw_settings.model_copy(update={"database_url": own_postgres.url.rsplit("/", 1)[0] + "/" + name})
    migrate(settings.effective_database_url, settings)
    yield settings
    if own_postgres.server_pid() is None:
        own_postgres.up()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cluster_pids(svc: PostgresService) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = svc.server_pid()
    if postmaster is None:
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            pids.append(int(entry.name))
    return pids


_frozen: list[int] = []


def _freeze(svc: PostgresService) -> None:
    for pid in _cluster_pids(svc):
        os.kill(pid, signal.SIGSTOP)
        _frozen.append(pid)


def _thaw() -> None:
    while _frozen:
        pid = _frozen.pop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _timed_health(gw: GatewayProcess) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = httpx.get(f"{gw.url}/healthz", timeout=60)
    return time.monotonic() - started, answer


def test_healthz_and_the_audit_answer_within_their_timeouts_while_postgresql_is_frozen(
    start: Any, own_settings: Settings, own_postgres: PostgresService
) -> None:
    gw = start(own_settings, gateway_health_timeout_s=2.0)
    token = issue(own_settings, "furiosa")
    assert _post(gw, token, ndjson(snapshot("frozen-1"))).status_code == 202
    _, healthy = _timed_health(gw)

    _freeze(own_postgres)
    try:
        frozen = [_timed_health(gw) for _ in range(5)]
        # requests that need no database: answered, their audit row kept for later
        unanswered_audit = []
        for _ in range(3):
            started = time.monotonic()
            unanswered_audit.append((_post(gw, None, b"{}"), time.monotonic() - started))
    finally:
        _thaw()
    deadline = time.monotonic() + 30
    thawed = _timed_health(gw)
    while thawed[1].status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        thawed = _timed_health(gw)
    after = _post(gw, None, b"{}")
    sent = {a.headers["X-Request-Id"]: a.status_code for a, _ in unanswered_audit} | {
        after.headers["X-Request-Id"]: after.status_code
    }
    deadline = time.monotonic() + 30
    while set(sent) - set(_audit_by_request(own_settings)) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # a replay still running would show as a second row
    audit = {rid: statuses for rid, statuses in _audit_by_request(own_settings).items() if rid in sent}
    record_figures(
        "gateway_healthz_frozen",
        {
            "before": healthy.status_code,
            "frozen_statuses": dict(Counter(a.status_code for _, a in frozen)),
            "frozen_seconds": [round(t, 2) for t, _ in frozen],
            "frozen_body": frozen[0][1].json(),
            "after_thaw": thawed[1].status_code,
            "requests_during_freeze": dict(Counter(a.status_code for a, _ in unanswered_audit)),
            "request_seconds_during_freeze": [round(t, 2) for _, t in unanswered_audit],
            "audit_rows_of_them_after_thaw": {rid[:8]: v for rid, v in audit.items()},
        },
    )
    assert healthy.status_code == 200, healthy.text
    for took, answer in frozen:
        assert answer.status_code == 503, answer.text
        assert answer.json()["unavailable"] == ["database"], answer.text
        assert "no answer within 2 s" in answer.json()["database"]
        assert took < 2.0 + 3.0, f"/healthz took {took:.1f} s with a 2 s timeout"
    assert thawed[1].status_code == 200, thawed[1].text
    for answer, took in unanswered_audit:
        assert answer.status_code == 401 and took < 3.0 + 3.0, (answer.status_code, took)
    assert audit == {rid: [status] for rid, status in sent.items()}, (audit, sent)


def _audit_by_request(settings: Settings) -> dict[str, list[int]]:
    with psycopg.connect(settings.effective_database_url) as conn:
        rows = conn.execute("SELECT request_id::text, status FROM ingest_audit").fetchall()
    found: dict[str, list[int]] = {}
    for request_id, status in rows:
        found.setdefault(str(request_id), []).append(int(status))
    return found


def _outage_requests(gw: GatewayProcess, token: str) -> list[httpx.Response]:
    return [
        _post(gw, token, ndjson(snapshot("outage-1", seq=1))),
        _post(gw, token, ndjson(snapshot("outage-1", seq=2))),
        _post(gw, token[:-4] + "abcd", ndjson(snapshot("outage-1", seq=3))),
        _post(gw, None, b"{}"),
        _post(gw, "not-a-token", b"{}"),
    ]


def _until_accepted(gw: GatewayProcess, token: str, seq: int) -> list[httpx.Response]:
    answers = [_post(gw, token, ndjson(snapshot("outage-2", seq=seq)))]
    deadline = time.monotonic() + 60
    while answers[-1].status_code != 202 and time.monotonic() < deadline:
        time.sleep(1.0)
        answers.append(_post(gw, token, ndjson(snapshot("outage-2", seq=seq))))
    return answers


def test_requests_answered_while_postgresql_is_stopped_are_audited_once_it_is_back(
    start: Any, own_settings: Settings, own_postgres: PostgresService, tmp_path: Path
) -> None:
    spool = tmp_path / "audit-spool.jsonl"
    gw = start(own_settings, gateway_audit_spool=spool)
    token = issue(own_settings, "furiosa")
    answers = [_post(gw, token, ndjson(snapshot("outage-0", seq=i))) for i in range(3)]

    # outage 1: the rows are replayed after the next row the database takes
    own_postgres.down()
    during_1 = _outage_requests(gw, token)
    own_postgres.up()
    after_1 = _until_accepted(gw, token, 10)
    answers += during_1 + after_1
    deadline = time.monotonic() + 30
    while len(_audit_by_request(own_settings)) < len(answers) and time.monotonic() < deadline:
        time.sleep(0.5)
    replayed_on_write = len(_audit_by_request(own_settings))

    # outage 2: the gateway stops while the rows are kept; a new one replays them at start-up
    own_postgres.down()
    during_2 = _outage_requests(gw, token)
    gw.stop()
    kept_lines = len(spool.read_text().splitlines())
    own_postgres.up()
    start(own_settings, gateway_audit_spool=spool)
    answers += during_2
    deadline = time.monotonic() + 30
    while len(_audit_by_request(own_settings)) < len(answers) and time.monotonic() < deadline:
        time.sleep(0.5)

    audit = _audit_by_request(own_settings)
    sent = {a.headers["X-Request-Id"]: a.status_code for a in answers}
    lost = [rid for rid in sent if rid not in audit]
    twice = [rid for rid, statuses in audit.items() if len(statuses) > 1]
    wrong = [rid for rid in sent if rid in audit and audit[rid] != [sent[rid]]]
    unexpected = [rid for rid in audit if rid not in sent]
    record_figures(
        "gateway_audit_outage",
        {
            "requests": len(answers),
            "statuses_during_outages": dict(Counter(a.status_code for a in during_1 + during_2)),
            "statuses_after": dict(Counter(a.status_code for a in after_1)),
            "rows_after_first_outage": replayed_on_write,
            "spool_lines_at_gateway_stop": kept_lines,
            "audit_rows": sum(len(v) for v in audit.values()),
            "lost": len(lost),
            "duplicated": len(twice),
            "wrongly_recorded": len(wrong),
            "unexpected": len(unexpected),
            "spool_left": spool.read_text(),
        },
    )
    assert Counter(a.status_code for a in during_1 + during_2) == Counter({503: 6, 401: 4}), [
        a.text for a in during_1 + during_2
    ]
    assert kept_lines == len(during_2)
    assert (len(lost), len(twice), len(wrong), len(unexpected)) == (0, 0, 0, 0), (lost, twice, wrong, unexpected)
    assert spool.read_text() == ""
