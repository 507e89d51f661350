"""Shared fixtures: the real local stack (PostgreSQL, Kafka) from infra/, on test ports and a test state
directory so that a developer's running demo stack is never touched, and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from small_disk import SmallDisk

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.settings import Settings, load_settings

ServiceT = TypeVar("ServiceT", KafkaService, PostgresService)
ROOT = Path(__file__).resolve().parent.parent
#: KCLOUD_TEST_STACK=N (1..9) gives a second test stack its own ports and state, for parallel runs
_STACK = int(os.environ.pop("KCLOUD_TEST_STACK", "0") or 0)  # popped: not a setting
#: KCLOUD_TIMESCALE=on runs on a stack of its own (state dir `testN-timescale`, other ports), whose cluster
#: preloads TimescaleDB, so that the plain stack's cluster (KCLOUD_TIMESCALE=off: no preload) exists beside it
_TIMESCALE = os.environ.get("KCLOUD_TIMESCALE", "").strip().lower() == "on"
_PORTS = 1000 if _TIMESCALE else 0
TEST_OVERRIDES = {
    "state_dir": ROOT
    / ".kcloud"
    / (("test" if _STACK == 0 else f"test{_STACK}") + ("-timescale" if _TIMESCALE else "")),
    "kafka_bootstrap": f"127.0.0.1:{19092 + 10 * _STACK + _PORTS}",
    "kafka_controller_port": 19093 + 10 * _STACK + _PORTS,
    "pg_port": 54339 + _STACK + _PORTS // 10,
    "kafka_partitions": 3,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/integration/" in str(item.path) or "/tests/reliability/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings pointing at the test stack (or at KCLOUD_DATABASE_URL's server when that is set)."""
    return load_settings(overrides=TEST_OVERRIDES)


def _session_service(svc: ServiceT) -> Iterator[ServiceT]:
    """Start `svc` for the test session unless it runs already; stop it after only if we started it."""
    was_running = svc.status().healthy
    try:
        svc.up()
    except Exception:
        svc.down()
        raise
    yield svc
    if not was_running and not os.environ.get("KEEP_TEST_STACK"):
        svc.down()


@pytest.fixture(scope="session")
def postgres_up(base_settings: Settings) -> Iterator[PostgresService]:
    """The test PostgreSQL cluster (KEEP_TEST_STACK=1 leaves it running after the session)."""
    yield from _session_service(PostgresService(base_settings))


@pytest.fixture(scope="session")
def kafka_up(base_settings: Settings) -> Iterator[KafkaService]:
    """The test Kafka broker (KEEP_TEST_STACK=1 leaves it running after the session)."""
    yield from _session_service(KafkaService(base_settings))


def _with_db(url: str, name: str) -> str:
    head, _, tail = url.rpartition("/")
    query = ""
    if "?" in tail:
        query = "?" + tail.split("?", 1)[1]
    return f"{head}/{name}{query}"


@pytest.fixture
def database_factory(postgres_up: PostgresService) -> Iterator[Callable[[], str]]:
    """Make new, empty databases on the test cluster (each dropped after the test); returns their URLs."""
    admin = _with_db(postgres_up.url, "postgres")
    made: list[str] = []

    def make() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _with_db(postgres_up.url, name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database_url(database_factory: Callable[[], str]) -> str:
    """URL of a new, empty database, dropped after the test."""
    return database_factory()


@pytest.fixture
def test_settings(base_settings: Settings, fresh_database_url: str) -> Settings:
    """Settings for one test: its own empty database and its own topic namespace."""
    return base_settings.model_copy(
        update={"database_url": fresh_database_url, "topic_namespace": f"t{uuid.uuid4().hex[:8]}."}
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., SmallDisk]]:
    """Mount really small filesystems: `small_disk("tmpfs", 256)` (KiB) or `small_disk("ext4", 2048)`,
    unmounted after the test (skipped where mounting is not permitted)."""
    disks: list[SmallDisk] = []

    def mount(kind: str = "tmpfs", size_kib: int = 256) -> SmallDisk:
        disks.append(SmallDisk(tmp_path / f"disk{len(disks)}", kind, size_kib))
        return disks[-1]

    try:
        yield mount
    finally:
        for disk in reversed(disks):
            disk.unmount()
