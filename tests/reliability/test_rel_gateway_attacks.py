"""The vendor gateway under a hand-written attack list: SQL injection in every string field, path
traversal, oversized headers, a slow-body client, token brute force and cross-vendor pushes. Nothing gets
a 5xx, no vendor can write as another, and the gateway keeps serving honest clients throughout. And,
with a real stream worker behind it, a furiosa token pushing what rebellions owns (its devices, its
nodes, with or without devices), moving nodes to another site, or dating snapshots far ahead or long ago
is refused up front (403, or 422 per snapshot), so that every sample stored is its owner's."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from gateway_helpers import GatewayProcess, audit_rows, consume, issue, ndjson, snapshot
from pipeline_helpers import scalar, wait_until
from reliability_helpers import count_samples, record_figures, start_worker

from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.records import DeadLetter, parse_snapshot
from kcloud.settings import Settings
from kcloud.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.reliability

SQLI = [
    "'; DROP TABLE vendors; --",
    "x' OR '1'='1",
    "1; DELETE FROM vendor_tokens WHERE '1'='1",
    "furiosa' UNION SELECT hash FROM vendor_tokens --",
    "$$; TRUNCATE deployment_events; $$",
    "\\'; COPY device_samples TO '/tmp/x'; --",
]
TRAVERSAL = [
    "/v1/telemetry/../../../../etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/v1/%2e%2e/%2e%2e/etc/passwd",
    "/v1/reports/evidence?site=../../../../etc/passwd",
    "/static/..%5c..%5cwindows%5cwin.ini",
]
_STRING_PATHS = [
    ("node", "node_id"),
    ("node", "site_id"),
    ("node", "hostname"),
    ("source",),
    ("collected_at",),
    ("devices", 0, "device_uuid"),
    ("devices", 0, "vendor"),
    ("devices", 0, "kind"),
    ("devices", 0, "model"),
    ("devices", 0, "health"),
]


@pytest.fixture
def gateway(test_settings: Settings, kafka_up: KafkaService, tmp_path: Path) -> Iterator[GatewayProcess]:
    migrate(test_settings.effective_database_url, test_settings)
    KafkaService(test_settings).ensure_topics()
    gw = GatewayProcess(test_settings, tmp_path / "gateway.log").start()
    try:
        yield gw
    finally:
        gw.stop()


def _injected(path: tuple[str | int, ...], value: str, seq: int) -> bytes:
    doc = snapshot(f"sqli-{seq}", seq=seq)
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return ndjson(doc)


def _guess(token_id: str, i: int) -> str:
    """A well-formed token of `token_id` with a guessed secret."""
    return f"kc_{token_id}_" + f"guess{i:04d}".ljust(43, "a")


def _slow_body_while_honest_push(gw: GatewayProcess, token: str) -> tuple[bytes, float, int]:
    """A client that declares 100 kB and trickles 10 bytes a second; meanwhile an honest push."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    try:
        sock.sendall(
            b"POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(3):
            sock.sendall(b"{" * 10)
            time.sleep(1.0)
        started = time.monotonic()
        honest = gw.push(token, ndjson(snapshot("honest-during-slow", seq=1, vendor="rebellions")))
        took = time.monotonic() - started
        sock.shutdown(socket.SHUT_WR)  # the slow client gives up: the request is incomplete
        sock.settimeout(30)
        answer = sock.recv(4096)
    finally:
        sock.close()
    return answer, took, honest.status_code


def test_attack_list_gets_no_5xx_and_no_cross_vendor_write(gateway: GatewayProcess, test_settings: Settings) -> None:
    gw = gateway
    furiosa = issue(test_settings, "furiosa")
    rebellions = issue(test_settings, "rebellions")
    statuses: dict[str, Counter[int]] = {}

    seen: Counter[int] = Counter()
    for i, (path, value) in enumerate((p, v) for p in _STRING_PATHS for v in SQLI):
        seen[gw.push(furiosa, _injected(path, value, i)).status_code] += 1
        time.sleep(0.06)  # inside the token's rate limit: every request reaches the validation
    statuses["sql_injection"] = seen

    seen = Counter()
    for target in TRAVERSAL:
        for method in ("GET", "POST"):
            answer = httpx.request(method, gw.url + target, headers={"Authorization": f"Bearer {furiosa}"})
            seen[answer.status_code] += 1
            assert "root:" not in answer.text and "[fonts]" not in answer.text, target
        time.sleep(0.1)
    statuses["path_traversal"] = seen

    seen = Counter()
    for size in (8 * 1024, 64 * 1024, 1024 * 1024):
        try:
            answer = httpx.post(
                gw.url + "/v1/telemetry",
                content=ndjson(snapshot("big-header", seq=1)),
                headers={
                    "Authorization": f"Bearer {furiosa}",
                    "Content-Type": "application/x-ndjson",
                    "X-Padding": "a" * size,
                },
                timeout=30,
            )
            seen[answer.status_code] += 1
        except httpx.TransportError:
            seen[0] += 1  # the server closed the connection: refused without an answer
    statuses["oversized_header"] = seen

    slow_answer, honest_took, honest_status = _slow_body_while_honest_push(gw, rebellions)
    statuses["slow_body"] = Counter([int(slow_answer.split(b" ")[1]) if slow_answer else 0])

    seen = Counter()
    token_id = furiosa.split("_")[1]
    for i in range(60):
        seen[gw.push(_guess(token_id, i), ndjson(snapshot("brute", seq=i))).status_code] += 1
    statuses["token_brute_force"] = seen

    cross = snapshot("cross-vendor", seq=1, vendor="rebellions")
    seen = Counter([gw.push(furiosa, ndjson(cross)).status_code])
    spoofed = copy.deepcopy(cross) | {"source": "push:furiosa"}
    seen[gw.push(furiosa, ndjson(spoofed)).status_code] += 1
    statuses["cross_vendor_push"] = seen
    health = httpx.get(gw.url + "/healthz")

    audit = audit_rows(test_settings)
    on_topic = [parse_snapshot(v) for _, v in consume(test_settings, test_settings.topic(TELEMETRY), 10_000, 10)]
    record_figures(
        "gateway_attacks",
        {
            "status_codes": {k: dict(v) for k, v in statuses.items()},
            "audit_rows": len(audit),
            "audit_statuses": dict(Counter(r["status"] for r in audit)),
            "honest_push_during_slow_client": {"status": honest_status, "seconds": round(honest_took, 2)},
            "records_on_topic": len(on_topic),
        },
    )
    five_xx = {k: dict(v) for k, v in statuses.items() if any(code >= 500 for code in v)}
    assert not five_xx, f"5xx answers: {five_xx}\n{gw.log()}"
    assert health.status_code == 200, health.text
    assert honest_status == 202 and honest_took < 5, (honest_status, honest_took)
    assert statuses["cross_vendor_push"] == Counter({403: 2}) or not statuses["cross_vendor_push"][202]
    for snap in on_topic:
        assert snap.node.node_id != "cross-vendor", "a furiosa token wrote rebellions devices"
        assert {d.vendor for d in snap.devices} <= {"furiosa", "rebellions"}
    with httpx.Client() as client:
        tables = client.get(gw.url + "/healthz").json()
    assert tables["database"] == "ok"


def test_token_brute_force_is_rate_limited(gateway: GatewayProcess, test_settings: Settings) -> None:
    token_id = issue(test_settings, "furiosa").split("_")[1]
    seen = Counter(gateway.push(_guess(token_id, i), ndjson(snapshot("brute", seq=i))).status_code for i in range(80))
    assert seen[429] > 0, f"80 wrong secrets in a row were answered {dict(seen)}"


def test_an_abandoned_slow_body_is_not_audited_as_a_server_error(
    gateway: GatewayProcess, test_settings: Settings
) -> None:
    _slow_body_while_honest_push(gateway, issue(test_settings, "rebellions"))
    time.sleep(1.0)
    audited = Counter(r["status"] for r in audit_rows(test_settings))
    assert audited[202] == 1 and not any(code >= 500 for code in audited), dict(audited)


def _owned_by(doc: dict[str, Any], uuid: str) -> dict[str, Any]:
    doc["devices"][0]["device_uuid"] = uuid
    return doc


def _at(doc: dict[str, Any], when: datetime) -> dict[str, Any]:
    doc["collected_at"] = when.isoformat()
    return doc


def _ownership_attacks(now: datetime) -> list[tuple[str, list[dict[str, Any]], int]]:
    """(attack class, the snapshots of one furiosa request, the status it must get)."""
    stolen = [f"rebellions-atom-node-{n}-{i}" for n in range(2) for i in range(2)]
    attacks: list[tuple[str, list[dict[str, Any]], int]] = []
    for k, uuid in enumerate(stolen):  # a rebellions card on a new furiosa node, or on a registered one
        node = f"rngd-thief-{k}" if k % 2 == 0 else "rngd-node-0"
        attacks.append(("foreign_device_uuid", [_owned_by(snapshot(node, seq=200 + k), uuid)], 403))
    for n in range(2):  # a rebellions node, with furiosa devices and with none
        attacks.append(("foreign_node_id", [snapshot(f"atom-node-{n}", seq=210 + n)], 403))
        attacks.append(("foreign_node_id_no_devices", [snapshot(f"atom-node-{n}", seq=212 + n, devices=0)], 403))
    for n in range(2):  # its own node, and a rebellions node, moved to another site
        attacks.append(("re_site_node", [snapshot(f"rngd-node-{n}", seq=220 + n, site_id="site-elsewhere")], 403))
    attacks.append(("re_site_node", [snapshot("atom-node-0", seq=222, site_id="site-elsewhere")], 403))
    # one honest snapshot beside a stolen card: the whole request is refused
    attacks.append(
        (
            "honest_beside_foreign",
            [snapshot("rngd-node-1", seq=230), _owned_by(snapshot("rngd-x", seq=230), stolen[0])],
            403,
        )
    )
    for k, when in enumerate(
        [
            now + timedelta(seconds=330),
            now + timedelta(hours=2),
            now + timedelta(days=1),
            datetime(2100, 1, 1, tzinfo=UTC),
        ]
    ):
        attacks.append(("far_future_collected_at", [_at(snapshot("rngd-node-0", seq=240 + k), when)], 422))
    for k, when in enumerate(
        [now - timedelta(days=7, minutes=5), now - timedelta(days=401), datetime(2000, 1, 1, tzinfo=UTC)]
    ):
        attacks.append(("ancient_collected_at", [_at(snapshot("rngd-node-1", seq=250 + k), when)], 422))
    return attacks


def test_ownership_and_time_attacks_are_refused_and_only_owners_samples_are_stored(
    rel_settings: Settings, tmp_path: Path
) -> None:
    settings = rel_settings
    gw = GatewayProcess(settings, tmp_path / "gateway.log").start()
    worker = start_worker(settings, tmp_path)
    url = settings.effective_database_url
    tokens = {"furiosa": issue(settings, "furiosa"), "rebellions": issue(settings, "rebellions")}
    honest: list[dict[str, Any]] = []
    sent = accepted = refused = requests = 0
    statuses: dict[str, Counter[int]] = {}
    reasons: Counter[str] = Counter()

    def push(vendor: str, docs: list[dict[str, Any]]) -> httpx.Response:
        nonlocal sent, accepted, refused, requests
        answer = gw.push(tokens[vendor], ndjson(*docs))
        requests += 1
        sent += len(docs)
        if answer.status_code == 202:
            accepted += len(answer.json()["accepted"])
        # a 403 refuses the whole request; a 202 or 422 lists each refused snapshot
        refused += len(docs) if answer.status_code == 403 else len(answer.json().get("rejected", []))
        reasons.update(r["reason"] for r in answer.json().get("rejected", []))
        time.sleep(0.06)  # inside the token's rate limit
        return answer

    def honest_tick(seq: int) -> None:
        for vendor, prefix in (("rebellions", "atom-node"), ("furiosa", "rngd-node")):
            docs = [snapshot(f"{prefix}-{n}", seq=seq, vendor=vendor) for n in range(2)]
            answer = push(vendor, docs)
            assert answer.status_code == 202, answer.text
            honest.extend(docs)

    try:
        for seq in range(1, 4):
            honest_tick(seq)
        devices_sent = sum(len(d["devices"]) for d in honest)
        wait_until(lambda: scalar(url, "SELECT count(*) FROM device_samples") >= devices_sent, 90, "first ticks stored")
        attacks = _ownership_attacks(datetime.now(UTC))
        for k, (name, docs, _) in enumerate(attacks):
            answer = push("furiosa", docs)
            statuses.setdefault(name, Counter())[answer.status_code] += 1
            if k % 4 == 3:
                honest_tick(4 + k // 4)
        # an honest snapshot beside a far-future one: the honest one is accepted, the other refused
        mixed = [
            snapshot("rngd-node-0", seq=300),
            _at(snapshot("rngd-node-1", seq=300), datetime.now(UTC) + timedelta(hours=3)),
        ]
        answer = push("furiosa", mixed)
        statuses["honest_beside_far_future"] = Counter([answer.status_code])
        honest.append(mixed[0])
        samples_sent = sum(len(d["devices"]) for d in honest)
        wait_until(
            lambda: scalar(url, "SELECT count(*) FROM device_samples") >= samples_sent, 90, "honest ticks stored"
        )
        time.sleep(2.0)  # anything wrongly accepted would be stored by now
        counters = worker.counters()
    finally:
        worker.stop()
        gw.stop()

    counted = count_samples(url, [parse_snapshot(json.dumps(d)) for d in honest])
    with psycopg.connect(url) as conn:
        wrong_devices = conn.execute(
            "SELECT count(*) FROM devices d WHERE d.device_uuid NOT LIKE d.vendor_id || '-%'"
            " OR d.node_id LIKE 'rngd-thief-%' OR d.node_id = 'rngd-x'"
            " OR d.vendor_id <> (CASE WHEN d.node_id LIKE 'atom-%' THEN 'rebellions' ELSE 'furiosa' END)"
        ).fetchone()
        nodes = conn.execute("SELECT node_id, site_id, vendor_id FROM nodes ORDER BY node_id").fetchall()
        wrong_samples = conn.execute(
            "SELECT count(*) FROM device_samples s JOIN devices d USING (device_id) JOIN nodes n USING (node_id)"
            " WHERE n.vendor_id IS DISTINCT FROM d.vendor_id"
        ).fetchone()
    letters = [DeadLetter.model_validate_json(v) for _, v in consume(settings, settings.topic(DEADLETTER), 100, 10)]
    on_topic = consume(settings, settings.topic(TELEMETRY), 10_000, 10)
    audit = audit_rows(settings)
    expected = {name: Counter({code: sum(1 for n, _, _ in attacks if n == name)}) for name, _, code in attacks}
    record_figures(
        "gateway_ownership_attacks",
        {
            "requests": requests,
            "snapshots_sent": sent,
            "snapshots_accepted": accepted,
            "snapshots_refused": refused,
            "status_codes": {k: dict(v) for k, v in statuses.items()},
            "refusal_reasons": dict(reasons),
            "records_on_topic": len(on_topic),
            "dead_letters": dict(Counter(f"{d.stage}: {d.reason}" for d in letters)),
            "worker_deadlettered": counters.get("deadlettered"),
            "samples": {
                "sent": counted.sent,
                "stored": counted.stored,
                "duplicated": counted.duplicated,
                "lost": counted.lost,
                "unexpected": counted.unexpected,
            },
            "wrong_devices": wrong_devices[0] if wrong_devices else None,
            "wrong_samples": wrong_samples[0] if wrong_samples else None,
            "audit_rows": len(audit),
        },
    )
    assert {k: v for k, v in statuses.items() if k in expected} == expected, statuses
    assert statuses["honest_beside_far_future"] == Counter({202: 1})
    assert sent == accepted + refused, (sent, accepted, refused)
    assert accepted == len(honest) == len(on_topic), (accepted, len(honest), len(on_topic))
    assert (counted.stored, counted.duplicated, counted.lost, counted.unexpected) == (counted.sent, 0, 0, 0), counted
    assert wrong_devices == (0,) and wrong_samples == (0,)
    assert nodes == [
        ("atom-node-0", "site-gw", "rebellions"),
        ("atom-node-1", "site-gw", "rebellions"),
        ("rngd-node-0", "site-gw", "furiosa"),
        ("rngd-node-1", "site-gw", "furiosa"),
    ]
    time_refused = sum(len(docs) for name, docs, _ in attacks if name.endswith("_collected_at")) + 1
    assert Counter((d.stage, d.reason) for d in letters) == Counter(
        {("gateway", "timestamp_out_of_range"): time_refused}
    )
    assert counters.get("deadlettered") == 0, "the ingest dead-lettered what the gateway accepted"
    assert len(audit) == requests and {r["status"] for r in audit} == {202, 403, 422}
