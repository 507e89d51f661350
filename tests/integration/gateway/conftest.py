"""Fixtures of the gateway tests: a migrated fresh database with topics on the test broker, and a
factory of `kcloud gateway` processes (each test picks its limits)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GatewayProcess

from infra.kafka import KafkaService
from kcloud.db.migrate import migrate
from kcloud.settings import Settings

# tests/conftest.py has read the stack number already; the settings loader refuses unknown KCLOUD_* variables
os.environ.pop("KCLOUD_TEST_STACK", None)


@pytest.fixture
def gw_settings(test_settings: Settings, kafka_up: KafkaService) -> Settings:
    """The test stack, a migrated fresh database and this test's own topics."""
    migrate(test_settings.effective_database_url, test_settings)
    KafkaService(test_settings).ensure_topics()
    return test_settings


@pytest.fixture
def start_gateway(gw_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start `kcloud gateway` with the test settings and the given overrides (stopped after the test)."""
    started: list[GatewayProcess] = []

    def start(**overrides: Any) -> GatewayProcess:
        settings = gw_settings.model_copy(update=overrides)
        gw = GatewayProcess(settings, tmp_path / f"gateway-{len(started)}.log").start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        code = gw.stop()
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -SIGTERM is a clean stop
        assert code in (0, -signal.SIGTERM), f"gateway did not stop cleanly ({code}):\n{gw.log()}"
        assert "Application shutdown complete" in gw.log(), gw.log()
