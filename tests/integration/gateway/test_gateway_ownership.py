"""The gateway refuses up front what the ingest would dead-letter: a push naming a device or node that
another vendor owns, or a node registered at another site, is refused whole (403, nothing on Kafka,
audited); a snapshot dated outside the accepted window is refused by itself (422 when nothing is left);
a database that cannot be read gets 503, never an unchecked 202. Real gateway process, real Kafka and
PostgreSQL; what is registered is stored by the ingest's own sink."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway_helpers import GatewayProcess, audit_rows, consume, issue, ndjson, register, snapshot

from kcloud.db.connect import connect
from kcloud.records import DeadLetter, parse_snapshot
from kcloud.topics import DEADLETTER, TELEMETRY

Start = Callable[..., GatewayProcess]


def _stolen(node_id: str, uuid: str, seq: int = 5) -> dict[str, Any]:
    """A furiosa snapshot of `node_id` whose first device is `uuid`."""
    snap = snapshot(node_id, seq=seq)
    snap["devices"][0]["device_uuid"] = uuid
    return snap


def _dated(node_id: str, at: datetime) -> dict[str, Any]:
    snap = snapshot(node_id, devices=1)
    snap["collected_at"] = at.isoformat()
    return snap


def test_what_another_vendor_owns_or_another_site_holds_is_refused_whole_and_nothing_reaches_kafka(
    start_gateway: Start,
) -> None:
    gw = start_gateway()
    register(gw.settings, snapshot("atom-1", vendor="rebellions"), snapshot("rngd-home"))
    token = issue(gw.settings, "furiosa")
    cases = {
        "device_owned_by_other_vendor": ndjson(snapshot("rngd-ok"), _stolen("rngd-new", "rebellions-atom-1-0")),
        "node_owned_by_other_vendor": ndjson(snapshot("atom-1")),
        "node_owned_by_other_vendor/no devices": ndjson(snapshot("rngd-ok"), snapshot("atom-1", devices=0)),
        "node_at_other_site": ndjson(snapshot("rngd-home", site_id="site-elsewhere")),
    }
    answers = {name: gw.push(token, body) for name, body in cases.items()}

    for name, answer in answers.items():
        reason = name.split("/")[0]
        assert answer.status_code == 403, (name, answer.text)
        body = answer.json()
        assert body["error"] == reason, body
        assert [r["reason"] for r in body["rejected"]] == [reason], body
        assert "refused all" in body["message"], body
    device = answers["device_owned_by_other_vendor"].json()
    assert "'rebellions-atom-1-0'" in device["message"] and "'rebellions'" in device["message"]
    assert device["rejected"][0]["line"] == 2 and device["rejected"][0]["node_id"] == "rngd-new"
    assert "'atom-1'" in answers["node_owned_by_other_vendor"].json()["message"]
    assert "no devices" in answers["node_owned_by_other_vendor/no devices"].json()["message"]
    site = answers["node_at_other_site"].json()["message"]
    assert "'rngd-home'" in site and "'site-gw'" in site and "'site-elsewhere'" in site

    own = gw.push(token, ndjson(snapshot("rngd-home", seq=6), snapshot("rngd-sentinel")))
    assert own.status_code == 202, own.text
    on_topic = consume(gw.settings, gw.settings.topic(TELEMETRY), until=10, timeout=5)
    assert sorted(key for key, _ in on_topic) == [b"rngd-home", b"rngd-sentinel"], "a refused push reached Kafka"
    assert consume(gw.settings, gw.settings.topic(DEADLETTER), until=1, timeout=3) == []
    audited = [(r["vendor_id"], r["status"], r["accepted"], r["rejected"]) for r in audit_rows(gw.settings)]
    assert audited == [
        ("furiosa", 403, 0, 2),
        ("furiosa", 403, 0, 1),
        ("furiosa", 403, 0, 2),
        ("furiosa", 403, 0, 1),
        ("furiosa", 202, 2, 0),
    ]


def test_the_owner_keeps_pushing_and_moves_its_own_card_to_another_of_its_nodes(start_gateway: Start) -> None:
    gw = start_gateway()
    register(gw.settings, snapshot("atom-1", vendor="rebellions"))
    rebellions = issue(gw.settings, "rebellions")

    assert gw.push(rebellions, ndjson(snapshot("atom-1", seq=2, vendor="rebellions"))).status_code == 202
    moved = snapshot("atom-2", seq=2, vendor="rebellions")
    moved["devices"][0]["device_uuid"] = "rebellions-atom-1-0"  # its own card on another of its nodes
    answer = gw.push(rebellions, ndjson(moved))
    assert answer.status_code == 202, "a relocation within a vendor is legitimate: " + answer.text
    assert [key for key, _ in consume(gw.settings, gw.settings.topic(TELEMETRY), 5, 5)] == [b"atom-1", b"atom-2"]


def test_snapshots_outside_the_accepted_window_are_refused_each_with_timestamp_out_of_range(
    start_gateway: Start,
) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    ahead, behind = timedelta(seconds=gw.settings.max_clock_ahead_s), timedelta(days=gw.settings.max_backfill_days)
    now = datetime.now(UTC)
    batch = {
        "ahead-inside": now + ahead - timedelta(seconds=20),
        "ahead-outside": now + ahead + timedelta(seconds=20),
        "behind-inside": now - behind + timedelta(minutes=2),
        "behind-outside": now - behind - timedelta(seconds=20),
        "two-hours-ahead": now + timedelta(hours=2),
        "401-days-old": now - timedelta(days=401),
    }
    answer = gw.push(token, ndjson(*(_dated(node, at) for node, at in batch.items())))

    assert answer.status_code == 202, answer.text
    assert [a["node_id"] for a in answer.json()["accepted"]] == ["ahead-inside", "behind-inside"]
    rejected = answer.json()["rejected"]
    assert [(r["node_id"], r["reason"]) for r in rejected] == [
        (node, "timestamp_out_of_range")
        for node in ("ahead-outside", "behind-outside", "two-hours-ahead", "401-days-old")
    ]
    assert "ahead of the receiver's clock" in rejected[0]["detail"] and "line 2" in rejected[0]["detail"]
    assert "backfill limit" in rejected[1]["detail"]

    alone = gw.push(token, ndjson(_dated("two-hours-ahead", now + timedelta(hours=2))))
    assert alone.status_code == 422, alone.text
    assert [r["reason"] for r in alone.json()["rejected"]] == ["timestamp_out_of_range"]

    on_topic = [parse_snapshot(v) for _, v in consume(gw.settings, gw.settings.topic(TELEMETRY), 10, 5)]
    assert sorted(s.node.node_id for s in on_topic) == ["ahead-inside", "behind-inside"]
    letters = [DeadLetter.model_validate_json(v) for _, v in consume(gw.settings, gw.settings.topic(DEADLETTER), 5)]
    assert sorted(d.reason for d in letters) == ["timestamp_out_of_range"] * 5
    assert {d.stage for d in letters} == {"gateway"}
    assert [(r["status"], r["accepted"], r["rejected"]) for r in audit_rows(gw.settings)] == [(202, 2, 4), (422, 0, 1)]


def test_a_database_that_cannot_be_read_gets_503_with_retry_after_never_an_unchecked_202(
    start_gateway: Start,
) -> None:
    gw = start_gateway()
    token = issue(gw.settings, "furiosa")
    assert gw.push(token, ndjson(snapshot("rngd-1"))).status_code == 202  # the token is known and good
    with connect(gw.settings.migration_database_url) as conn:  # as the schema owner
        conn.execute("ALTER TABLE nodes RENAME TO nodes_away")
    try:
        answer = gw.push(token, ndjson(snapshot("rngd-2")))
    finally:
        with connect(gw.settings.migration_database_url) as conn:
            conn.execute("ALTER TABLE nodes_away RENAME TO nodes")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "database_unavailable" and int(answer.headers["Retry-After"]) >= 1
    assert "who owns" in answer.json()["message"]
    assert [key for key, _ in consume(gw.settings, gw.settings.topic(TELEMETRY), 5, 5)] == [b"rngd-1"]
    assert gw.push(token, ndjson(snapshot("rngd-2"))).status_code == 202
