"""The same panel queries on TimescaleDB (hypertables, continuous aggregates, `$__timeGroup` as
`time_bucket`): skipped, with the server's reason, where the timescaledb extension cannot be installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fleet_db import FilledDb
from panel_checks import PANEL_IDS, PANELS, check_panel_in_every_window

from dashboards.spec import DashboardSpec, PanelSpec

pytestmark = pytest.mark.timescale


@pytest.fixture(scope="module")
def conn(filled_timescale: FilledDb) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(filled_timescale.url, autocommit=True) as c:
        yield c


@pytest.mark.parametrize(("board", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_query_returns_the_columns_it_shows_on_timescaledb(
    board: DashboardSpec, panel: PanelSpec, filled_timescale: FilledDb, conn: psycopg.Connection[Any]
) -> None:
    for sql in check_panel_in_every_window(
        conn,
        board,
        panel,
        data_start=filled_timescale.start,
        data_end=filled_timescale.end,
        timescaledb=filled_timescale.timescaledb,
    ):
        if "time_bucket" in sql:
            assert "floor(extract(epoch" not in sql
