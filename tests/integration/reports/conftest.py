"""Fixtures of the report tests: one database per test session filled by the seeded simulated fleet
(see report_fleet.py for what happens in it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from report_fleet import FleetDb, fill

from infra.postgres import PostgresService
from kcloud.settings import Settings


@pytest.fixture(scope="session")
def fleet_db(base_settings: Settings, postgres_up: PostgresService) -> Iterator[FleetDb]:
    """The filled database and the snapshots written to it."""
    yield from fill(base_settings, postgres_up)
