"""A hostile database user with the service's credentials: the stream worker runs as the service role of the
local cluster (migrations as the owner role), and that role can append to the ledger and nothing more. UPDATE,
DELETE, TRUNCATE, switching the ledger's triggers off (ALTER TABLE ... DISABLE TRIGGER, session_replication_role)
and dropping them are refused; the local cluster refuses a connection without the role's password."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_helpers import fleet_input, scalar, send, wait_until, worker_settings
from reliability_helpers import count_samples, record_figures, start_worker

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from kcloud.db.connect import connect
from kcloud.db.mode import probe_timescaledb, recorded_mode
from kcloud.db.partitions import ensure_partitions
from kcloud.settings import LOCAL_OWNER_ROLE, LOCAL_SERVICE_ROLE, LOCAL_SUPERUSER, Settings

pytestmark = pytest.mark.reliability

#: what a user holding the service role's password tries against the ledger
ATTEMPTS = {
    "UPDATE": "UPDATE deployment_events SET event = 'idle' WHERE seq = (SELECT min(seq) FROM deployment_events)",
    "DELETE": "DELETE FROM deployment_events WHERE seq = (SELECT max(seq) FROM deployment_events)",
    "TRUNCATE": "TRUNCATE deployment_events",
    "DISABLE TRIGGER": "ALTER TABLE deployment_events DISABLE TRIGGER deployment_events_append_only",
    "DISABLE TRIGGER ALL": "ALTER TABLE deployment_events DISABLE TRIGGER ALL",
    "DROP TRIGGER": "DROP TRIGGER deployment_events_append_only ON deployment_events",
    "session_replication_role": "SET session_replication_role = replica",
    "DROP TABLE": "DROP TABLE deployment_events",
}


@pytest.fixture
def role_settings(
    test_settings: Settings,
    postgres_up: PostgresService,
    kafka_up: KafkaService,
    in_tmp: Path,
) -> Settings:
    """A fresh database owned by the owner role (migrated as it), the service's URL as the service role."""
    if postgres_up.external:
        pytest.skip("KCLOUD_DATABASE_URL names an external server: its roles are its own")
    admin = test_settings.effective_database_url  # the test database as the cluster's superuser
    name = admin.rpartition("/")[2]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO {LOCAL_OWNER_ROLE}')
        if test_settings.timescale != "off" and probe_timescaledb(conn).installable:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")  # a superuser's step, as `infra up` does
    as_roles = test_settings.model_copy(
        update={
            "database_url": test_settings.local_role_url(LOCAL_SERVICE_ROLE, name),
            "owner_database_url": test_settings.local_role_url(LOCAL_OWNER_ROLE, name),
        }
    )
    return worker_settings(as_roles, app_prefix="roles", batch_size=50)


def _refusal(url: str, statement: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            return str(exc).splitlines()[0]
    return "ACCEPTED"


def _connects(url: str) -> Callable[[], object]:
    return lambda: psycopg.connect(url, connect_timeout=5).close()


def test_the_service_role_appends_to_the_ledger_and_can_neither_change_it_nor_switch_its_triggers_off(
    role_settings: Settings, tmp_path: Path
) -> None:
    service = role_settings.effective_database_url
    snaps = fleet_input(nodes=3, ticks=10)
    worker = start_worker(role_settings, tmp_path, "roles")  # migrates as the owner, ingests as the service
    try:
        send(role_settings, snaps)
        wait_until(lambda: worker.counters()["messages"] >= len(snaps), 60, "every message consumed")
    finally:
        worker.stop()
    stored = count_samples(service, snaps)
    rows = scalar(service, "SELECT count(*) FROM deployment_events")
    assert rows >= 3 * 8 and stored.lost == 0 and stored.duplicated == 0, (rows, stored)

    with connect(service, autocommit=True) as conn:  # days not made ahead: made by the owner's function
        week_ago = datetime.now(UTC).date() - timedelta(days=7)
        made = ensure_partitions(conn, week_ago, week_ago + timedelta(days=1))
        mode = recorded_mode(conn)
    assert len(made) == (0 if mode and mode[0] == "timescaledb" else 2), made
    refused = {verb: _refusal(service, statement) for verb, statement in ATTEMPTS.items()}
    owner = role_settings.migration_database_url
    enabled = scalar(
        owner,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'deployment_events'::regclass "
        "AND tgenabled = 'O' AND NOT tgisinternal",
    )
    owned = scalar(
        owner,
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = %s)",
        (LOCAL_SERVICE_ROLE,),
    )
    after = scalar(service, "SELECT count(*) FROM deployment_events")
    record_figures(
        "database_roles",
        {"ledger_rows": rows, "after": after, "samples": stored, "refused": refused, "owned_by_service": owned},
    )
    assert {verb: why for verb, why in refused.items() if why == "ACCEPTED"} == {}
    assert after == rows and enabled == 2 and owned == 0


def test_the_local_cluster_refuses_connections_without_the_roles_password(
    base_settings: Settings, postgres_up: PostgresService
) -> None:
    if postgres_up.external:
        pytest.skip("KCLOUD_DATABASE_URL names an external server: its authentication is its own")
    port = base_settings.pg_port
    for role in (LOCAL_SUPERUSER, LOCAL_OWNER_ROLE, LOCAL_SERVICE_ROLE):
        for url in (
            f"postgresql://{role}@127.0.0.1:{port}/postgres",
            f"postgresql://{role}:wrong@127.0.0.1:{port}/postgres",
            f"postgresql:///postgres?host={postgres_up.sockets}&port={port}&user={role}",
        ):
            with pytest.raises(psycopg.OperationalError, match="password"):
                _connects(url)()
        _connects(base_settings.local_role_url(role, "postgres"))()
    assert base_settings.pgpass_file.stat().st_mode & 0o777 == 0o600
