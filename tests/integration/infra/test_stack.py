"""`infra up` is idempotent and answers for each service; clear messages for taken ports and stale pids."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra import stack
from infra.errors import InfraError
from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.settings import Settings


def test_second_up_finds_everything_healthy_and_starts_nothing(
    base_settings: Settings, postgres_up: PostgresService, kafka_up: KafkaService
) -> None:
    kafka_pid = kafka_up.running_pid()
    pg_pid = postgres_up.server_pid()
    lines = stack.up(base_settings)
    assert all("already running" in line for line in lines), lines
    assert kafka_up.running_pid() == kafka_pid
    assert postgres_up.server_pid() == pg_pid
    st = stack.status(base_settings)
    assert st.healthy, st.lines()


def test_project_topics_exist_with_the_configured_partitions(base_settings: Settings, kafka_up: KafkaService) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(["kcloud.telemetry.v1", "kcloud.deadletter.v1"])}
    finally:
        admin.close()
    assert set(described) == {"kcloud.telemetry.v1", "kcloud.deadletter.v1"}
    assert len(described["kcloud.telemetry.v1"]["partitions"]) == base_settings.kafka_partitions


def test_kafka_port_taken_by_a_stranger_is_reported_not_waited_on(tmp_path: Path, base_settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = base_settings.model_copy(update={"state_dir": tmp_path, "kafka_bootstrap": f"127.0.0.1:{port}"})
        with pytest.raises(InfraError, match=f"port 127.0.0.1:{port} is already taken"):
            KafkaService(settings).up()


def test_postgres_port_taken_by_a_stranger_is_reported(tmp_path: Path, base_settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = base_settings.model_copy(update={"state_dir": tmp_path, "pg_port": port})
        with pytest.raises(InfraError, match=f"port 127.0.0.1:{port} is already taken"):
            PostgresService(settings).up()


def test_stale_kafka_pid_file_is_cleared_not_trusted(tmp_path: Path, base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={"state_dir": tmp_path})
    svc = KafkaService(settings)
    svc.home.mkdir(parents=True)
    svc.pid_file.write_text("999999")  # no such process
    assert svc.running_pid() is None
    assert not svc.pid_file.exists()
    assert "not running" in svc.down()


def test_down_leaves_an_external_database_alone(base_settings: Settings, postgres_up: PostgresService) -> None:
    external = base_settings.model_copy(update={"database_url": postgres_up.url})
    assert "left running" in PostgresService(external).down()
    assert postgres_up.status().healthy
