"""A stream worker SIGKILLed five times at seeded random points of a run loses and doubles nothing: the
samples stored are exactly the samples sent, and the minute rollups equal those of a second database fed
the same input by one uninterrupted worker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import fingerprint, fleet_input, scalar, send, sibling_settings, wait_until
from reliability_helpers import count_samples, record_figures, start_worker

from kcloud.settings import Settings
from streams.launcher import WorkerProcess

pytestmark = pytest.mark.reliability

SEED = 20260611
KILLS = 5
COUNT = "SELECT count(*) FROM device_samples"


def _run_until_stored(worker: WorkerProcess, url: str, target: int, timeout: float = 60.0) -> None:
    """Let `worker` run until `target` samples are stored, polling closely so the kill lands mid-run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scalar(url, COUNT) >= target:
            return
        assert worker.proc is not None and worker.proc.poll() is None, f"worker died on its own; see {worker.log_path}"
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {target} stored samples (see {worker.log_path})")


def _finish(worker: WorkerProcess, url: str, expected: int, messages: int) -> None:
    try:
        wait_until(lambda: scalar(url, COUNT) >= expected, 90, f"{expected} stored samples")
        wait_until(lambda: worker.counters()["messages"] >= messages, 60, "every message consumed")
    finally:
        worker.stop()


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    time_col = "time" if table == "device_samples" else "bucket"
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT d.device_uuid, t.* FROM {table} t JOIN devices d USING (device_id) "
            f"ORDER BY d.device_uuid, t.{time_col}"
        ).fetchall()


def _first_difference(url: str, other_url: str, table: str) -> str:
    """The first row of `table` that differs between the two databases (device ids left out)."""
    mine = [r[:1] + r[2:] for r in _rows(url, table)]
    theirs = [r[:1] + r[2:] for r in _rows(other_url, table)]
    for a, b in zip(mine, theirs, strict=False):
        if a != b:
            return f"{table}: killed run has {a}, clean run {b}"
    return f"{table}: {len(mine)} rows after the kills, {len(theirs)} in the clean run"


def test_five_sigkills_at_random_points_lose_and_double_no_sample(
    rel_settings: Settings, tmp_path: Path, database_factory: Callable[[], str]
) -> None:
    url = rel_settings.effective_database_url
    snaps = fleet_input(nodes=12, ticks=40)
    expected = sum(len(s.devices) for s in snaps)
    rng = random.Random(SEED)
    send(rel_settings, snaps)

    at_kill: list[int] = []
    for i in range(KILLS):
        stored = scalar(url, COUNT)
        target = stored + rng.randint(expected // 40, expected // 8)  # five kills never reach the end
        worker = start_worker(rel_settings, tmp_path, f"killed-{i}")
        try:
            _run_until_stored(worker, url, target)
            worker.kill()
        finally:
            worker.stop()
        at_kill.append(scalar(url, COUNT))
    assert all(n < expected for n in at_kill), f"a kill came after the run had finished: {at_kill} of {expected}"

    # the survivor consumes from the last committed offsets: the replayed part must change nothing
    _finish(start_worker(rel_settings, tmp_path, "survivor"), url, expected, 0)
    killed = count_samples(url, snaps)

    clean_url = database_factory()
    clean = sibling_settings(rel_settings, clean_url, "clean")
    send(clean, snaps)
    _finish(start_worker(clean, tmp_path, "clean"), clean_url, expected, len(snaps))

    killed_print, clean_print = fingerprint(url), fingerprint(clean_url)
    commissioned = scalar(url, "SELECT count(*) FROM deployment_events WHERE event = 'commissioned'")
    record_figures(
        "worker_kills",
        {
            "messages_sent": len(snaps),
            "samples": killed,
            "stored_at_each_kill": at_kill,
            "rollup_rows": killed_print["device_rollup_1m"][0],
            "rollups_equal_clean_run": killed_print["device_rollup_1m"] == clean_print["device_rollup_1m"],
            "samples_equal_clean_run": killed_print["device_samples"] == clean_print["device_samples"],
            "commissioned_events": commissioned,
        },
    )
    assert (killed.stored, killed.duplicated, killed.lost, killed.unexpected) == (expected, 0, 0, 0), killed
    assert commissioned == 12 * 8
    assert killed_print["device_samples"] == clean_print["device_samples"], _first_difference(
        url, clean_url, "device_samples"
    )
    assert killed_print["device_rollup_1m"] == clean_print["device_rollup_1m"], _first_difference(
        url, clean_url, "device_rollup_1m"
    )
