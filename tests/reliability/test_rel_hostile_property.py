"""The integrity acceptance as a property: generated hostile pushes through a real `kcloud gateway` and a
real `kcloud streams worker` (real Kafka, real PostgreSQL), with honest pushes of both vendors among them.

One furiosa token sends, one snapshot per request, snapshots drawn from every class a vendor controls:
numbers at and beyond every catalogue bound (and non-finite ones), identifiers of every class (byte-order
marks, right-to-left overrides, non-ASCII, control characters, over-long, empty), times around each edge
of the event-time window and beyond, and another vendor's devices and nodes. After each generated run:

* no answer of any endpoint is a 5xx;
* every snapshot ends in exactly one place: sent = stored + dead-lettered by the ingest + refused;
* every honest snapshot is accepted and stored;
* no sample, ledger row or node registration of the other vendor changed;
* `kcloud ledger verify` (under the trusted key) says the ledger is intact.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from gateway_helpers import KCLOUD, ROOT, GatewayProcess, issue
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from reliability_helpers import record_figures, start_worker

from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.records import NodeSnapshot, parse_snapshot
from kcloud.settings import Settings
from kcloud.timewindow import TimeWindow
from streams.launcher import WorkerProcess, settings_env

pytestmark = pytest.mark.reliability

SITE = "site-prop"
VICTIM_SITE = "site-victim"
VICTIM_NODES = ["rbln-node-0", "rbln-node-1"]
VICTIM_DEVICES = [f"rbln-dev-{i}" for i in range(4)]
OWN_NODES = [f"fur-node-{i}" for i in range(3)]
OWN_DEVICES = [f"fur-dev-{i}" for i in range(6)]

ODD_IDS = [
    "\ufeffbom-id",
    "rtl\u202eid",
    "non\ufdd0char",
    "n\u00f6n-ascii",
    "ctl\x07id",
    "tab\tid",
    "with space",
    "x" * 300,
    "",
    "'; DROP TABLE devices; --",
    "GPU-",
]


@dataclass
class Ledger:
    """What one run saw."""

    sent: int = 0
    refused: int = 0
    accepted: list[NodeSnapshot] = field(default_factory=list)
    honest: list[NodeSnapshot] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


class Clock:
    """Distinct instants: each drawn snapshot is shifted by its own number of milliseconds."""

    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> timedelta:
        self.n += 1
        return timedelta(milliseconds=self.n)


def _device(uuid: str, vendor: str, **numbers: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device_uuid": uuid,
        "vendor": vendor,
        "kind": "npu",
        "model": "synthetic",
        "util_pct": 40.0,
        "mem_used_bytes": 1 << 30,
        "mem_total_bytes": 1 << 34,
        "power_w": 120.0,
        "temp_c": 50.0,
        "health": "ok",
    }
    doc.update(numbers)
    return doc


def _doc(
    node_id: str, site_id: str, at: datetime | str, devices: list[dict[str, Any]], seq: int, *, vendor: str = "furiosa"
) -> dict[str, Any]:
    return {
        "schema": "kcloud.telemetry/1",
        "node": {"node_id": node_id, "site_id": site_id, "hostname": f"{node_id or 'x'}.example"},
        "source": f"push:{vendor}",
        "collected_at": at if isinstance(at, str) else at.isoformat(),
        "seq": seq,
        "devices": devices,
    }


_NUMBERS: dict[str, list[Any]] = {
    "util_pct": [-0.0, 0, 100, 100.0001, -1e-9, 1e39, 1e308, "50", True, None],
    "power_w": [0.0, 1e-45, 5000, 1e39, -1.0, None],
    "temp_c": [-273.16, -40.0, 150.0, 1e39, None],
    "mem_used_bytes": [0, 2**63, 2**64, -1, 1.5, None],
    "mem_total_bytes": [0, 2**63 - 1, 2**70, None],
}


ATTACKS = [
    "number",
    "identifier",
    "time",
    "other_device",
    "other_node",
    "other_site",
    "vendor_field",
    "throughput",
    "none",
]
_ID_FIELDS = ["node_id", "site_id", "hostname", "device_uuid", "model"]


@st.composite
def hostile(draw: st.DrawFn, window: TimeWindow, clock: Clock) -> tuple[str, bytes]:
    """One snapshot a hostile furiosa client might send: an honest one with one thing changed (the attack
    class, and the bytes sent)."""
    now = datetime.now(UTC)
    node, site = draw(st.sampled_from(OWN_NODES)), SITE
    uuids = draw(st.lists(st.sampled_from(OWN_DEVICES), max_size=3, unique=True))
    devices = [_device(u, "furiosa") for u in uuids]
    at: datetime | str = now - timedelta(minutes=3)
    attack = draw(st.sampled_from(ATTACKS))
    if attack == "number" and devices:
        key = draw(st.sampled_from(sorted(_NUMBERS)))
        value = draw(st.sampled_from(_NUMBERS[key]))
        if value is None:
            del devices[0][key]
        else:
            devices[0][key] = value
    elif attack == "identifier":
        where, odd = draw(st.sampled_from(_ID_FIELDS)), draw(st.sampled_from(ODD_IDS))
        if where == "node_id":
            node = odd
        elif where == "site_id":
            site = odd
        elif devices:
            devices[0][where] = odd
    elif attack == "time":
        edges = {
            "ahead_inside": now + window.max_ahead - timedelta(seconds=60),
            "ahead_outside": now + window.max_ahead + timedelta(seconds=60),
            "far_future": now + timedelta(minutes=55),
            "behind_inside": now - window.max_behind + timedelta(hours=1),
            "behind_outside": now - window.max_behind - timedelta(hours=1),
        }
        at = edges[draw(st.sampled_from(sorted(edges)))]
        if draw(st.integers(0, 4)) == 0:
            at = draw(st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z", "2026-13-40T00:00:00Z"]))
    elif attack == "other_device":
        devices.append(_device(draw(st.sampled_from(VICTIM_DEVICES)), "furiosa"))
    elif attack == "other_node":
        node = draw(st.sampled_from(VICTIM_NODES))
    elif attack == "other_site":
        site = draw(st.sampled_from([VICTIM_SITE, "site-elsewhere"]))
    elif attack == "vendor_field" and devices:
        devices[0]["vendor"] = draw(st.sampled_from(["rebellions", "Furiosa", "furiosa\u200b", "nvidia"]))
    elif attack == "throughput" and devices:
        devices[0]["throughput"] = {
            "value": draw(st.sampled_from([0.0, 1e9, 1e9 + 1, 1e39, -1.0])),
            "unit": draw(st.sampled_from(["tokens/s", "x" * 100, "\u202eunit"])),
            "workload": draw(st.sampled_from(["llm", "w" * 200, "\ufeffw", "video-transcode"])),
        }
    if isinstance(at, datetime):
        at += clock.tick()
    seq = draw(st.sampled_from([1, 1, 1, 0, -1, 2**63, 2**31]))
    return attack, json.dumps(_doc(node, site, at, devices, seq)).encode()


def _honest(i: int, clock: Clock) -> bytes:
    node = OWN_NODES[i % len(OWN_NODES)]
    devices = [_device(OWN_DEVICES[2 * (i % len(OWN_NODES)) + k], "furiosa") for k in range(2)]
    return json.dumps(_doc(node, SITE, datetime.now(UTC) - timedelta(minutes=5) + clock.tick(), devices, 1)).encode()


def _push(gw: GatewayProcess, token: str, body: bytes) -> httpx.Response:
    """POST one snapshot, waiting out the token's rate limit (a 429 is back-pressure, not an answer)."""
    for _ in range(50):
        answer = gw.push(token, body + b"\n")
        if answer.status_code != 429:
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise AssertionError("the gateway kept answering 429")


def _stored_count(url: str, snap: NodeSnapshot) -> int:
    """How many of `snap`'s device samples are in storage (each at most once: the storage key is unique)."""
    with psycopg.connect(url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM device_samples s JOIN devices d USING (device_id) "
            "WHERE s.time = %s AND d.device_uuid = ANY(%s)",
            (snap.collected_at, [d.device_uuid for d in snap.devices]),
        ).fetchone()
    return int(n[0]) if n else 0


def _stored(url: str, snap: NodeSnapshot) -> bool:
    """Every device sample of `snap` is in storage."""
    return _stored_count(url, snap) == len(snap.devices)


def _victim_state(url: str) -> tuple[Any, ...]:
    """Everything of the victim vendor a hostile push might change."""
    with psycopg.connect(url) as conn:
        samples = conn.execute(
            "SELECT d.device_uuid, count(*), sum(s.util_pct) FROM device_samples s JOIN devices d USING (device_id) "
            "WHERE d.vendor_id = 'rebellions' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        events = conn.execute(
            "SELECT e.seq, e.event FROM deployment_events e JOIN devices d USING (device_id) "
            "WHERE d.vendor_id = 'rebellions' ORDER BY 1"
        ).fetchall()
        nodes = conn.execute(
            "SELECT node_id, site_id, hostname, vendor_id FROM nodes WHERE node_id = ANY(%s) ORDER BY 1",
            (VICTIM_NODES,),
        ).fetchall()
        devices = conn.execute(
            "SELECT device_uuid, vendor_id FROM devices WHERE device_uuid = ANY(%s) ORDER BY 1", (VICTIM_DEVICES,)
        ).fetchall()
    return tuple(samples), tuple(events), tuple(nodes), tuple(devices)


def _wait_drained(worker: WorkerProcess, target: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        now = worker.counters()
        if now["messages"] >= target:
            return now
        assert time.monotonic() < deadline, f"worker consumed {now['messages']} of {target}; see {worker.log_path}"
        time.sleep(0.3)


def _verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KCLOUD), "ledger", "verify"],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def pipeline(rel_settings: Settings, tmp_path: Path) -> Iterator[tuple[GatewayProcess, WorkerProcess]]:
    migrate(rel_settings.effective_database_url, rel_settings)
    KafkaService(rel_settings).ensure_topics()
    gw = GatewayProcess(rel_settings, tmp_path / "gateway.log").start()
    try:
        worker = start_worker(rel_settings, tmp_path, "property")
        try:
            yield gw, worker
        finally:
            worker.stop()
    finally:
        gw.stop()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # a batch's repr is long
def test_generated_hostile_pushes_never_break_the_evidence(
    pipeline: tuple[GatewayProcess, WorkerProcess], rel_settings: Settings
) -> None:
    gw, worker = pipeline
    url = rel_settings.effective_database_url
    furiosa = issue(rel_settings, "furiosa")
    rebellions = issue(rel_settings, "rebellions")
    pm = issue(rel_settings, None, role="program-manager")
    window = TimeWindow.from_settings(rel_settings)
    clock = Clock()

    victim_samples: Counter[str] = Counter()

    def victim_push() -> int:
        """The victim goes on reporting, now, as an honest vendor does (so that it is never silent)."""
        at = datetime.now(UTC) - timedelta(seconds=1) + clock.tick()
        for n, node in enumerate(VICTIM_NODES):
            devices = [_device(u, "rebellions", kind="npu") for u in VICTIM_DEVICES[2 * n : 2 * n + 2]]
            body = json.dumps(_doc(node, VICTIM_SITE, at, devices, 1, vendor="rebellions")).encode()
            assert _push(gw, rebellions, body).status_code == 202
            victim_samples.update(d["device_uuid"] for d in devices)
        return len(VICTIM_NODES)

    def victim_unchanged() -> None:
        samples, events, nodes, devices = _victim_state(url)
        assert {uuid: (int(n), float(util)) for uuid, n, util in samples} == {
            uuid: (n, 40.0 * n) for uuid, n in victim_samples.items()
        }, "the other vendor's samples are not exactly what it sent"
        assert (events, nodes, devices) == victim_before[1:], "a hostile push changed the other vendor's evidence"

    # the victim registers its nodes and devices with honest pushes
    victim_push()
    for n in range(len(OWN_NODES)):  # and furiosa its own, at its site
        assert _push(gw, furiosa, _honest(n, clock)).status_code == 202
    consumed = _wait_drained(worker, len(VICTIM_NODES) + len(OWN_NODES))["messages"]
    deadline = time.monotonic() + 60
    while not _victim_state(url)[0] or len(_victim_state(url)[0]) < len(VICTIM_DEVICES):
        assert time.monotonic() < deadline, "the victim's registration was not stored"
        time.sleep(0.3)
    victim_before = _victim_state(url)
    totals: Counter[str] = Counter()
    classes: Counter[tuple[str, int]] = Counter()
    runs: list[dict[str, Any]] = []

    @hsettings(
        max_examples=4,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs real pushes and waits
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(hostile(window, clock), min_size=30, max_size=45))
    def run(batch: list[tuple[str, bytes]]) -> None:
        nonlocal consumed
        seen = Ledger()
        before = worker.counters()
        victims = victim_push()
        for i, (attack, body) in enumerate(batch):
            if i % 5 == 4:
                victims += victim_push()
            bodies = [body] + ([_honest(i, clock)] if i % 3 == 0 else [])
            for k, one in enumerate(bodies):
                answer = _push(gw, furiosa, one)
                seen.sent += 1
                seen.statuses[answer.status_code] += 1
                classes[attack if k == 0 else "honest", answer.status_code] += 1
                assert answer.status_code < 500, (answer.status_code, answer.text, one[:300])
                if answer.status_code == 202:
                    snap = parse_snapshot(one)  # what the gateway accepted must pass the contract
                    seen.accepted.append(snap)
                    if k == 1:
                        seen.honest.append(snap)
                else:
                    assert 400 <= answer.status_code < 500 and answer.status_code != 429
                    assert k == 0, f"an honest snapshot was refused: {answer.status_code} {answer.text}"
                    seen.refused += 1
        consumed += len(seen.accepted) + victims
        counters = _wait_drained(worker, consumed)
        valid = counters["snapshots_valid"] - before["snapshots_valid"] - victims
        dead = counters["deadlettered"] - before["deadlettered"]
        with_samples = [snap for snap in seen.accepted if snap.devices]
        stored = sum(1 for snap in with_samples if _stored(url, snap))
        partial = sum(1 for snap in with_samples if 0 < _stored_count(url, snap) < len(snap.devices))
        # every snapshot ends in exactly one place: stored (whole), dead-lettered by the ingest, or refused
        assert seen.sent == valid + dead + seen.refused, (seen.sent, valid, dead, seen.refused, seen.statuses)
        assert partial == 0 and stored <= valid and len(with_samples) - stored <= dead, (stored, partial, valid)
        assert dead == 0, f"the ingest dead-lettered {dead} snapshot(s) the gateway had accepted (one window, one rule)"
        assert all(_stored(url, snap) for snap in seen.honest)
        victim_unchanged()
        # report endpoints with hostile parameters: never a 5xx
        for query in ("from=0001-01-01&to=9999-12-31", "generated_at=9999-12-31T23:59:59-14:00", "from=x&to=%00"):
            for path in ("/v1/reports/evidence", "/v1/reports/allocation"):
                answer = httpx.get(f"{gw.url}{path}?{query}", headers={"Authorization": f"Bearer {pm}"}, timeout=120)
                seen.statuses[answer.status_code] += 1
                assert answer.status_code < 500, (path, query, answer.text[:300])
        assert httpx.get(f"{gw.url}/healthz", timeout=10).status_code == 200

        verify = _verify(rel_settings)
        assert verify.returncode == 0 and "ledger intact" in verify.stdout, verify.stdout + verify.stderr
        totals.update(sent=seen.sent, stored=valid, ingest_dead_lettered=dead, refused=seen.refused)
        totals.update({f"http_{code}": n for code, n in seen.statuses.items()})
        runs.append({"sent": seen.sent, "stored": valid, "dead_lettered": dead, "refused": seen.refused})

    run()
    by_class = {f"{attack} -> {code}": n for (attack, code), n in sorted(classes.items())}
    record_figures("hostile_property", {"runs": runs, "totals": dict(totals), "by_class": by_class})
    # the generated runs met every class, and both outcomes (not everything refused, not everything accepted)
    assert {a for a, _ in classes} >= {*ATTACKS, "honest"}, sorted(classes)
    assert classes["other_device", 403] and classes["other_node", 403] and classes["other_site", 403], by_class
    assert totals["stored"] > totals["sent"] // 3 and totals["refused"] > 0, dict(totals)
