"""The vendor gateway as a vendor meets it: a real `kcloud gateway` process, the real Kafka and
PostgreSQL. What arrives on the topic is read back with kafka-python; every request leaves an audit row."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from gateway_helpers import KCLOUD, ROOT, GatewayProcess, audit_rows, consume, issue, ndjson, snapshot

from kcloud.records import DeadLetter, parse_snapshot
from kcloud.topics import DEADLETTER, TELEMETRY
from streams.launcher import settings_env

Start = Callable[..., GatewayProcess]


def test_furiosa_token_pushes_furiosa_snapshots_onto_the_telemetry_topic(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    body = ndjson(*(snapshot(f"rngd-{n}", seq=7) for n in range(3)))

    many = gw.push(token, body)
    one = gw.push(token, json.dumps(snapshot("rngd-9", seq=8, devices=4)).encode(), "application/json")

    assert many.status_code == 202, many.text
    assert [(a["node_id"], a["line"], a["devices"]) for a in many.json()["accepted"]] == [
        ("rngd-0", 1, 2),
        ("rngd-1", 2, 2),
        ("rngd-2", 3, 2),
    ]
    assert many.json()["rejected"] == []
    assert one.status_code == 202, one.text
    records = consume(gw.settings, gw.settings.topic(TELEMETRY), until=4)
    got = sorted((key, parse_snapshot(value)) for key, value in records)
    assert [(key, snap.node.node_id, len(snap.devices)) for key, snap in got] == [
        (b"rngd-0", "rngd-0", 2),
        (b"rngd-1", "rngd-1", 2),
        (b"rngd-2", "rngd-2", 2),
        (b"rngd-9", "rngd-9", 4),
    ]
    assert {snap.source for _, snap in got} == {"push:furiosa"}
    rows = audit_rows(gw.settings)
    assert [(r["vendor_id"], r["accepted"], r["rejected"], r["status"], r["remote_addr"]) for r in rows] == [
        ("furiosa", 3, 0, 202, "127.0.0.1"),
        ("furiosa", 1, 0, 202, "127.0.0.1"),
    ]
    assert rows[0]["bytes"] == len(body)
    assert rows[0]["token_id"] == token.split("_")[1]


def test_pushing_another_vendors_devices_is_refused_and_nothing_reaches_kafka(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    nvidia = snapshot("dgx-1", vendor="nvidia")

    refused = gw.push(token, ndjson(snapshot("rngd-1"), nvidia))
    assert refused.status_code == 403, refused.text
    message = refused.json()["message"]
    assert "nvidia-dgx-1-0" in message and "'nvidia'" in message and "'furiosa'" in message
    assert [(r["line"], r["reason"]) for r in refused.json()["rejected"]] == [(2, "vendor_mismatch")]

    sentinel = gw.push(token, ndjson(snapshot("rngd-sentinel")))
    assert sentinel.status_code == 202
    records = consume(gw.settings, gw.settings.topic(TELEMETRY), until=3, timeout=5)
    assert [key for key, _ in records] == [b"rngd-sentinel"], "a refused push reached Kafka"
    assert [(r["status"], r["accepted"], r["rejected"]) for r in audit_rows(gw.settings)] == [(403, 0, 2), (202, 1, 0)]


def test_revoked_and_unknown_tokens_get_401(start_gateway: Start) -> None:
    gw = start_gateway()
    env = settings_env(gw.settings)
    created = subprocess.run(
        [str(KCLOUD), "vendor", "token", "create", "--vendor", "furiosa", "--label", "ci"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    token_id = token.split("_")[1]
    assert "cannot be shown again" in created.stderr
    assert gw.push(token, ndjson(snapshot("rngd-1"))).status_code == 202

    revoked = subprocess.run(
        [str(KCLOUD), "vendor", "token", "revoke", token_id],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert revoked.returncode == 0, revoked.stderr
    after = gw.push(token, ndjson(snapshot("rngd-1", seq=2)))
    unknown = gw.push("kc_0123456789ab_" + "x" * 43, ndjson(snapshot("rngd-1", seq=3)))
    wrong_secret = gw.push(token[:-4] + "abcd", ndjson(snapshot("rngd-1", seq=4)))
    missing = httpx.post(f"{gw.url}/v1/telemetry", content=b"{}", headers={"Content-Type": "application/json"})

    assert after.status_code == 401 and after.json()["error"] == "revoked_token", after.text
    assert after.headers["WWW-Authenticate"] == "Bearer"
    assert unknown.status_code == 401 and unknown.json()["error"] == "unknown_token"
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "unknown_token"
    assert missing.status_code == 401 and missing.json()["error"] == "missing_token"
    listed = subprocess.run(
        [str(KCLOUD), "vendor", "token", "list", "--vendor", "furiosa"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert token_id in listed.stdout and "ci" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout
    rows = audit_rows(gw.settings)
    assert [(r["token_id"], r["status"]) for r in rows] == [
        (token_id, 202),
        (token_id, 401),
        ("0123456789ab", 401),
        (token_id, 401),
        (None, 401),
    ]
    assert [r["vendor_id"] for r in rows] == ["furiosa", None, None, None, None]


def test_malformed_json_is_refused_with_its_line_and_column(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")

    single = gw.push(token, b'{"schema": "kcloud.telemetry/1",\n  "node": {"node_id" "x"}}', "application/json")
    assert single.status_code == 400, single.text
    assert "line 2, column 22" in single.json()["message"]

    good = json.dumps(snapshot("rngd-1")).encode()
    mixed = gw.push(
        token, good + b"\n" + b'{"schema": "kcloud.telemetry/1", "node": }\n' + good.replace(b"rngd-1", b"rngd-2")
    )
    assert mixed.status_code == 202, mixed.text
    assert [a["line"] for a in mixed.json()["accepted"]] == [1, 3]
    [rejected] = mixed.json()["rejected"]
    assert (rejected["line"], rejected["reason"]) == (2, "invalid_json")
    assert "line 2, column 42" in rejected["detail"]

    letters = [DeadLetter.model_validate_json(v) for _, v in consume(gw.settings, gw.settings.topic(DEADLETTER), 2)]
    assert len(letters) == 2, "each refused snapshot is dead-lettered with its reason"
    letter = next(d for d in letters if "line 2, column 42" in d.detail)
    assert (letter.stage, letter.reason) == ("gateway", "invalid_json")
    assert letter.original() == b'{"schema": "kcloud.telemetry/1", "node": }'


def test_snapshots_that_break_the_contract_are_refused_with_the_field_at_fault(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    hot = snapshot("rngd-1")
    hot["devices"][1]["temp_c"] = 400
    answer = gw.push(token, ndjson(hot))
    assert answer.status_code == 422, answer.text
    [rejected] = answer.json()["rejected"]
    assert rejected["reason"] == "invalid_field" and "devices.1.temp_c" in rejected["detail"]
    assert rejected["node_id"] == "rngd-1"

    wrong_type = gw.push(token, b"node_id=1", "application/x-www-form-urlencoded")
    assert wrong_type.status_code == 415 and "application/x-ndjson" in wrong_type.json()["message"]


def test_oversized_bodies_and_batches_are_refused_with_413(start_gateway: Start) -> None:
    gw = start_gateway(gateway_max_body_bytes=4096, gateway_max_snapshots=3)
    token = issue(gw.settings, "furiosa")
    big = ndjson(snapshot("rngd-1", devices=40))
    assert len(big) > 4096

    answer = gw.push(token, big)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "body_too_large" and "4096" in answer.json()["message"]

    chunked = httpx.post(
        f"{gw.url}/v1/telemetry",
        content=iter([big[:2000], big[2000:]]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    assert chunked.status_code == 413, chunked.text

    batch = gw.push(token, ndjson(*(snapshot(f"n{i}", devices=1) for i in range(4))))
    assert batch.status_code == 413 and batch.json()["error"] == "too_many_snapshots"
    assert gw.push(token, ndjson(*(snapshot(f"n{i}", devices=1) for i in range(3)))).status_code == 202


def test_a_burst_over_the_rate_gets_429_with_retry_after(start_gateway: Start) -> None:
    gw = start_gateway(gateway_rate_per_s=0.5, gateway_burst=3)
    token = issue(gw.settings, "furiosa")
    other = issue(gw.settings, "furiosa")
    body = ndjson(snapshot("rngd-1"))

    answers = [gw.push(token, body) for _ in range(5)]

    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    assert [a.status_code for a in answers[3:]] == [429, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 2
    assert answers[3].json()["error"] == "rate_limited"
    assert gw.push(other, body).status_code == 202, "one token's burst must not limit another token"
    statuses = [r["status"] for r in audit_rows(gw.settings)]
    assert statuses == [202, 202, 202, 429, 429, 202]


def test_a_program_manager_token_cannot_push(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, None, role="program-manager")
    answer = gw.push(token, ndjson(snapshot("rngd-1")))
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden_role", answer.text


def test_health_and_metrics_report_what_the_gateway_did(start_gateway: Start) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    assert gw.push(token, ndjson(snapshot("rngd-1"), snapshot("rngd-2"))).status_code == 202
    health = httpx.get(f"{gw.url}/healthz")
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "database": "ok", "kafka": "ok", "unavailable": []}
    assert 'kcloud_gateway_snapshots_total{outcome="accepted",vendor="furiosa"} 2.0' in metrics
    assert 'kcloud_gateway_requests_total{status="202"} 1.0' in metrics
    spec = httpx.get(f"{gw.url}/openapi.json").json()
    assert "NodeSnapshot" in spec["components"]["schemas"]


def test_an_expired_token_gets_401_saying_it_expired(start_gateway: Start) -> None:
    gw = start_gateway()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    token = issue(gw.settings, "furiosa", expires_at=soon)
    before = gw.push(token, ndjson(snapshot("rngd-1")))
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    after = gw.push(token, ndjson(snapshot("rngd-1", seq=2)))

    assert before.status_code == 202, before.text
    assert after.status_code == 401 and after.json()["error"] == "expired_token", after.text
    assert "expired at" in after.json()["message"] and after.headers["WWW-Authenticate"] == "Bearer"
    assert [r["status"] for r in audit_rows(gw.settings)] == [202, 401]


def test_an_address_failing_to_authenticate_never_locks_out_a_valid_token_from_it(start_gateway: Start) -> None:
    gw = start_gateway(gateway_auth_fail_burst=3)
    good = issue(gw.settings, "furiosa")
    wrong = "kc_0123456789ab_" + "x" * 43

    failing = [gw.push(wrong, ndjson(snapshot("rngd-x", seq=i))).status_code for i in range(6)]
    valid = gw.push(good, ndjson(snapshot("rngd-1")))
    still_failing = gw.push(wrong, ndjson(snapshot("rngd-x", seq=9)))

    assert failing[:3] == [401, 401, 401] and 429 in failing[3:], failing
    assert valid.status_code == 202, valid.text
    assert still_failing.status_code == 429 and still_failing.json()["error"] == "too_many_failed_authentications"
    assert "Retry-After" in still_failing.headers


def test_x_forwarded_for_is_believed_only_from_a_configured_proxy(start_gateway: Start) -> None:
    wrong = "kc_0123456789ab_" + "x" * 43
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    plain = start_gateway(gateway_auth_fail_burst=2)
    answers = [
        httpx.post(
            f"{plain.url}/v1/telemetry",
            content=b"{}",
            headers={
                "Authorization": f"Bearer {wrong}",
                "X-Forwarded-For": f"203.0.113.{i}",
                "Content-Type": "application/json",
            },
        ).status_code
        for i in range(4)
    ]
    assert answers == [401, 401, 429, 429], "a new X-Forwarded-For per request must not dodge the limit"
    assert {r["remote_addr"] for r in audit_rows(plain.settings)} == {"127.0.0.1"}

    behind = start_gateway(gateway_trusted_proxies="127.0.0.1")
    token = issue(behind.settings, "furiosa")
    answer = httpx.post(
        f"{behind.url}/v1/telemetry",
        content=ndjson(snapshot("rngd-1")),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson", **spoofed},
    )
    assert answer.status_code == 202, answer.text
    assert audit_rows(behind.settings)[-1]["remote_addr"] == "203.0.113.7"
