"""Shared fleets of the simulator tests: one 1,000-node fleet observed six times over a KST weekday,
built once per session through the fast path and decoded with `json`, so that the whole simulator suite
stays within a few seconds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collectors.simulator import SimulatedFleet

Tick = tuple[datetime, list[tuple[bytes, bytes]], list[dict[str, Any]]]

# Tuesday 2026-11-03 00:00:07 KST
_DAY_START = datetime(2026, 11, 2, 15, 0, 7, tzinfo=UTC)
DAY_HOURS_KST = (1, 4, 9, 13, 15, 20)


@pytest.fixture(scope="session")
def day_start() -> datetime:
    """00:00:07 KST on a Tuesday."""
    return _DAY_START


@pytest.fixture(scope="session")
def fleet() -> SimulatedFleet:
    return SimulatedFleet(nodes=1000, seed=20261103)


@pytest.fixture(scope="session")
def day(fleet: SimulatedFleet) -> list[Tick]:
    """(at, raw (key, value) pairs, decoded messages) at the KST hours of DAY_HOURS_KST."""
    out = []
    for seq, hour in enumerate(DAY_HOURS_KST):
        at = _DAY_START + timedelta(hours=hour)
        raw = fleet.tick_bytes(at, seq=seq)
        out.append((at, raw, [json.loads(value) for _, value in raw]))
    return out


@pytest.fixture(scope="session")
def devices(day: list[Tick]) -> list[dict[str, Any]]:
    """Every device sample of the day, flattened."""
    return [dev for _, _, docs in day for doc in docs for dev in doc["devices"]]
