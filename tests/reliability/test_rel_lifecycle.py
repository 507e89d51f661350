"""The device lifecycle through a real `kcloud streams worker` against hostile input: one token flipping
1,000 devices between two nodes (the ledger stays bounded, a real relocation is recorded once), snapshots
dated days back within the backfill window (commissioning does not move), and an operator's `kcloud device
decommission` while the worker and its sweep run (no doubled or backdated transition, the ledger intact)."""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import scalar, send, wait_until
from reliability_helpers import ROOT, count_samples, record_figures, start_worker

from collectors.simulator import SimulatedFleet
from kcloud.records import NodeRef, NodeSnapshot
from kcloud.settings import Settings
from streams.launcher import settings_env

pytestmark = pytest.mark.reliability

EVENTS = "SELECT count(*) FROM deployment_events WHERE event = %s"


def _kcloud(settings: Settings, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kcloud"), *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _on(snap: NodeSnapshot, node: str, site: str) -> NodeSnapshot:
    return snap.model_copy(update={"node": NodeRef(node_id=node, site_id=site, hostname=node)})


def _ledger_order_faults(url: str) -> tuple[int, int]:
    """(doubled, backdated): consecutive identical availability events of a device, and events dated before
    the device's previous one, in ledger order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT device_uuid, event, at FROM deployment_events ORDER BY device_uuid, seq").fetchall()
    doubled = backdated = 0
    for _, group in itertools.groupby(rows, key=lambda r: r[0]):
        events = list(group)
        for (_, _, at_a), (_, _, at_b) in itertools.pairwise(events):
            backdated += at_b < at_a
        avail = [e for _, e, _ in events if e in {"offline", "returned", "decommissioned"}]
        doubled += sum(a == b or (a, b) == ("decommissioned", "offline") for a, b in itertools.pairwise(avail))
    return doubled, backdated


def test_a_thousand_devices_flipping_between_two_nodes_add_no_relocation_until_they_settle(
    rel_settings: Settings, tmp_path: Path
) -> None:
    url = rel_settings.effective_database_url
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    fleet = SimulatedFleet(nodes=125, seed=13, node_prefix="flip")
    base = fleet.snapshot(0, t0, seq=0)
    pool = [d for n in range(125) for d in fleet.snapshot(n, t0, seq=0).devices][:1000]
    flips, settle = 20, 5
    snaps = []
    for tick in range(flips + settle):
        at = t0 + timedelta(seconds=10 * tick)
        devices = pool
        snap = base.model_copy(update={"collected_at": at, "seq": tick, "devices": devices})
        if tick < flips:  # every device changes node every tick
            snaps.append(_on(snap, "flip-a" if tick % 2 == 0 else "flip-b", "site-a" if tick % 2 == 0 else "site-b"))
        else:  # the first 100 really move to flip-b and stay there; the rest stay on flip-a
            snaps.append(_on(snap.model_copy(update={"devices": devices[:100]}), "flip-b", "site-b"))
            snaps.append(_on(snap.model_copy(update={"devices": devices[100:]}), "flip-a", "site-a"))
    worker = start_worker(rel_settings, tmp_path, "flip")
    try:  # tick by tick, as a fleet sends them (the two nodes are on different partitions)
        sent = 0
        for at in sorted({s.collected_at for s in snaps}):
            batch = [s for s in snaps if s.collected_at == at]
            send(rel_settings, batch)
            sent += len(batch)
            wait_until(lambda n=sent: worker.counters()["messages"] >= n, 60, "the tick consumed")
    finally:
        worker.stop()
    samples = count_samples(url, snaps)
    relocated = scalar(url, EVENTS, ("relocated",))
    moved_once = scalar(
        url,
        "SELECT count(*) FROM (SELECT device_uuid FROM deployment_events WHERE event = 'relocated' "
        "GROUP BY device_uuid HAVING count(*) = 1 AND bool_and(node_id = 'flip-b')) m",
    )
    on_b = scalar(url, "SELECT count(*) FROM devices WHERE node_id = 'flip-b'")
    hours = (flips + settle) * 10 / 3600
    figures = {
        "samples": samples,
        "devices": len(pool),
        "flips_per_device": flips - 1,
        "relocated_rows": relocated,
        "relocated_rows_per_device_per_hour": relocated / len(pool) / hours,
        "real_moves_recorded_once": moved_once,
    }
    record_figures("lifecycle_relocation_flood", figures)
    assert samples.lost == samples.duplicated == samples.unexpected == 0, figures
    assert relocated == 100 and moved_once == 100 and on_b == 100, figures


def test_snapshots_dated_days_back_do_not_move_commissioning(rel_settings: Settings, tmp_path: Path) -> None:
    url = rel_settings.effective_database_url
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    fleet = SimulatedFleet(nodes=3, seed=17, node_prefix="back")
    now_snaps = [fleet.snapshot(n, t0 + timedelta(seconds=10 * t), seq=t) for t in range(6) for n in range(3)]
    old_snaps = [  # three days back: inside the backfill window (7 days), so stored
        fleet.snapshot(n, t0 - timedelta(days=3) + timedelta(seconds=10 * t), seq=100 + t)
        for t in range(6)
        for n in range(3)
    ]
    devices = len({d.device_uuid for s in now_snaps for d in s.devices})
    first, later = old_snaps[:9], old_snaps[9:]
    send(rel_settings, now_snaps + first)  # in one batch: the first sight, then older samples behind it
    worker = start_worker(rel_settings, tmp_path, "present")
    try:
        wait_until(lambda: worker.counters()["messages"] >= len(now_snaps) + len(first), 90, "the present consumed")
    finally:
        worker.stop()
    worker = start_worker(rel_settings, tmp_path, "backfill")  # a fresh worker: nothing of the devices in memory
    try:
        send(rel_settings, later)
        wait_until(lambda: worker.counters()["messages"] >= len(later), 90, "the backfill consumed")
    finally:
        worker.stop()
    samples = count_samples(url, now_snaps + old_snaps)
    moved = scalar(url, "SELECT count(*) FROM devices WHERE first_seen <> %s", (t0,))
    commissioned_elsewhere = scalar(
        url, "SELECT count(*) FROM deployment_events WHERE event = 'commissioned' AND at <> %s", (t0,)
    )
    figures = {
        "samples": samples,
        "devices": devices,
        "first_seen_moved": moved,
        "commissioned_events": scalar(url, EVENTS, ("commissioned",)),
        "commissioned_not_at_first_sight": commissioned_elsewhere,
    }
    record_figures("lifecycle_backfill", figures)
    assert samples.lost == samples.duplicated == samples.unexpected == 0, figures
    assert moved == commissioned_elsewhere == 0 and figures["commissioned_events"] == devices, figures


def test_a_decommission_while_the_worker_and_its_sweep_run_doubles_and_backdates_nothing(
    rel_settings: Settings, tmp_path: Path
) -> None:
    url = rel_settings.effective_database_url
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=200)
    fleet = SimulatedFleet(nodes=2, seed=19, node_prefix="decom")
    pulled = fleet.snapshot(0, t0, seq=0).devices[0].device_uuid

    def tick(t: int) -> list[NodeSnapshot]:
        out = []
        for n in range(2):
            snap = fleet.snapshot(n, t0 + timedelta(seconds=10 * t), seq=t)
            if n == 0 and 5 <= t < 15:  # the card is silent (offline by the card check), its node is not
                snap = snap.model_copy(update={"devices": [d for d in snap.devices if d.device_uuid != pulled]})
            out.append(snap)
        return out

    first = [s for t in range(15) for s in tick(t)]
    second = [s for t in range(15, 30) for s in tick(t)]  # dated around the command's clock, before and after
    worker = start_worker(rel_settings, tmp_path, "decom")
    try:
        send(rel_settings, first)
        offline = "SELECT count(*) FROM deployment_events WHERE event = 'offline' AND device_uuid = %s"
        wait_until(lambda: scalar(url, offline, (pulled,)) >= 1, 90, "the silent card offline")
        code, out = _kcloud(rel_settings, "device", "decommission", pulled, "--reason", "retired by the operator")
        assert code == 0, out
        send(rel_settings, second)
        wait_until(lambda: worker.counters()["messages"] >= len(first) + len(second), 90, "every message consumed")
    finally:
        worker.stop()
    doubled, backdated = _ledger_order_faults(url)
    code, verify = _kcloud(rel_settings, "ledger", "verify")
    with psycopg.connect(url) as conn:
        pulled_events = [
            r[0]
            for r in conn.execute(
                "SELECT event FROM deployment_events WHERE device_uuid = %s AND event <> 'active' AND event <> 'idle' "
                "ORDER BY seq",
                (pulled,),
            ).fetchall()
        ]
    figures = {
        "pulled_card_events": pulled_events,
        "doubled_transitions": doubled,
        "backdated_transitions": backdated,
        "ledger_verify": verify.strip(),
    }
    record_figures("lifecycle_decommission_race", figures)
    assert doubled == backdated == 0, figures
    assert code == 0 and "ledger intact" in verify, figures
    assert pulled_events[:3] == ["commissioned", "offline", "decommissioned"], figures
