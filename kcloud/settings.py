"""Settings for every stage: one pydantic model, read from `KCLOUD_*` environment variables and an
optional TOML file.

Precedence, strongest first: explicit overrides (CLI flags), environment, the TOML file
(`--config`, `KCLOUD_CONFIG`, or `./kcloud.toml` when present), the defaults below. Unknown keys in
the file and unknown `KCLOUD_*` variables stop start-up with a message naming them: a typo must never
silently fall back to a default.

Example:
    >>> s = load_settings(overrides={"kafka_bootstrap": "127.0.0.1:19092"})
    >>> s.kafka_bootstrap
    '127.0.0.1:19092'
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from kcloud.topics import TopicSpec

__all__ = [
    "ENV_PREFIX",
    "LOCAL_OWNER_ROLE",
    "LOCAL_SERVICE_ROLE",
    "LOCAL_SUPERUSER",
    "Settings",
    "SettingsError",
    "load_settings",
    "local_passwords",
]

ENV_PREFIX = "KCLOUD_"
_CONFIG_ENV = "KCLOUD_CONFIG"
_DEFAULT_CONFIG = Path("kcloud.toml")


class SettingsError(Exception):
    """A configuration problem, with a message meant for the person who wrote the configuration."""


class Settings(BaseSettings):
    """Every tunable of the service, with its default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # local infrastructure (infra/)
    state_dir: Path = Field(Path(".kcloud"), description="Directory for Kafka and PostgreSQL data and logs.")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,...]).")
    kafka_controller_port: int = Field(9093, description="KRaft controller port of the local broker.")
    kafka_heap_mb: int = Field(512, ge=128, description="Heap of the local broker's JVM, in MiB.")
    kafka_partitions: int = Field(6, ge=1, description="Partitions of each project topic when created.")
    topic_namespace: str = Field(
        "", pattern=r"^[a-z0-9._-]*$", description="Prefix of every project topic name (isolates test runs)."
    )
    database_url: str | None = Field(
        None, description="PostgreSQL URL; when set, this server is used as-is and none is started."
    )
    pg_port: int = Field(54329, description="Port of the project's own PostgreSQL cluster.")
    startup_timeout_s: float = Field(90.0, gt=0, description="How long `infra up` waits for a service.")
    # database roles: migrations run as the schema's owner, the service as a role that owns nothing (it may only
    # read and append to the ledger, so it can neither rewrite it nor switch its triggers off); the local
    # cluster makes both, with generated passwords in <state_dir>/pgpass (0600)
    owner_database_url: str | None = Field(
        None, description="PostgreSQL URL migrations run under (the schema owner) [default: database_url]."
    )
    service_role: str = Field(
        "kcloud_service",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Role `migrate` grants the service's privileges to, where it exists (never the owner).",
    )

    # storage
    timescale: Literal["auto", "on", "off"] = Field(
        "auto", description="Use TimescaleDB: auto (when installable), on (required), off (plain PostgreSQL)."
    )
    retention_days: int = Field(400, ge=1, description="Raw samples older than this are dropped.")
    max_clock_ahead_s: float = Field(
        300.0, ge=0, le=3600, description="Snapshots dated further ahead of the receiver's clock are refused."
    )
    max_backfill_days: float = Field(
        7.0, gt=0, description="Snapshots dated further back than this are refused (never beyond the retention)."
    )
    compress_after_days: int = Field(7, ge=1, description="TimescaleDB compresses chunks older than this.")
    partitions_ahead_days: int = Field(7, ge=1, description="Plain PostgreSQL: daily partitions made ahead.")

    # stream processors (streams/)
    app_id: str = Field("kcloud-streams", description="Faust app id = Kafka consumer group of the workers.")
    worker_web_port: int = Field(6066, description="Port of a stream worker's web server (one per worker).")
    worker_session_timeout_s: float = Field(
        30.0, ge=6, description="A silent worker's partitions go to the others after this many seconds."
    )
    ingest_batch_size: int = Field(
        2000, ge=1, description="Most snapshots written to the database at once (a batch's objects are in memory)."
    )
    ingest_batch_seconds: float = Field(1.0, gt=0, description="Longest wait to fill an ingest batch.")
    sample_interval_s: float = Field(10.0, gt=0, description="Nominal collector cadence, in seconds.")
    allowed_lateness_s: float = Field(
        120.0, ge=0, description="Samples this late (event time) still update their 1-minute rollup."
    )
    # what one vendor may create through its telemetry (beyond it: stored without, counted)
    max_workloads_per_vendor: int = Field(
        1000,
        ge=0,
        le=30000,
        description="Most distinct throughput (workload, unit) pairs a vendor's samples may introduce; beyond "
        "it a sample is stored without its throughput (counted as throughput_refused).",
    )

    # deployments (the K-Cloud evidence) and alerts
    active_util_pct: float = Field(5.0, ge=0, le=100, description="Utilization above which a device is busy.")
    active_sustain_s: float = Field(300.0, ge=0, description="How long busy/idle must last to change state.")
    offline_after_intervals: int = Field(6, ge=1, description="Missed intervals after which a device is offline.")
    decommission_after_days: float = Field(30.0, gt=0, description="Offline this long means decommissioned.")
    # relocations (the ledger's growth per device is bounded: see README, device lifecycle)
    relocate_confirm_intervals: int = Field(
        3, ge=1, description="Samples in a row from another node before a device is recorded as relocated."
    )
    relocate_max_per_hour: int = Field(
        4, ge=1, description="Relocations recorded per device per event-time hour; further moves are summarised."
    )
    temp_alert_c: float = Field(90.0, description="Device temperature that opens an alert.")
    ecc_alert_quiet_s: float = Field(
        3600.0, gt=0, description="An uncorrected-ECC alert resolves after this long without a further rise."
    )
    rollup_refresh_s: float = Field(
        300.0, gt=0, description="How often hourly/daily rollups are refreshed (one worker at a time)."
    )
    ledger_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM, mode 0600) signing ledger appends and checkpoints "
        "[default: <state_dir>/keys/ledger-ed25519.pem].",
    )
    # ledger tamper evidence: the key a verifier trusts and where checkpoints are kept outside the database
    ledger_public_key_file: Path | None = Field(
        None,
        description="The trusted public key (base64 or PEM) that ledger signatures and checkpoints must verify "
        "under [default: <ledger_key_file>.pub, else the public half of ledger_key_file].",
    )
    ledger_checkpoint_dir: Path | None = Field(
        None,
        description="Append-only store of signed ledger checkpoints, outside the database "
        "[default: <state_dir>/checkpoints].",
    )

    # vendor push gateway
    gateway_host: str = Field("127.0.0.1", description="Address the vendor gateway listens on.")
    gateway_port: int = Field(8470, description="Port of the vendor gateway.")
    gateway_max_body_bytes: int = Field(10 * 2**20, ge=1024, description="Largest request body accepted.")
    gateway_max_snapshots: int = Field(1000, ge=1, description="Most snapshots in one request.")
    gateway_rate_per_s: float = Field(20.0, gt=0, description="Requests per second allowed per token.")
    gateway_burst: int = Field(40, ge=1, description="Requests a token may send in a burst.")
    gateway_auth_fail_burst: int = Field(
        20, ge=1, description="Failed authentications a client address may make at once, then one per second."
    )
    gateway_trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the gateway believes; empty: believe no one (the peer address is the client).",
    )
    gateway_health_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Longest /healthz waits for the database before answering 503."
    )
    gateway_audit_spool: Path | None = Field(
        None,
        description="JSONL file of ingest_audit rows the database did not take, replayed when it answers "
        "again [default: <state_dir>/gateway/audit-spool.jsonl].",
    )

    @field_validator("gateway_trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        items = value if isinstance(value, list | tuple) else str(value).split(",") if value is not None else []
        networks = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR network ({exc})") from exc
        return ",".join(networks)

    @property
    def gateway_trusted_proxy_list(self) -> list[str]:
        """The trusted proxies as networks (empty: none)."""
        return [n for n in self.gateway_trusted_proxies.split(",") if n]

    @property
    def gateway_audit_spool_path(self) -> Path:
        """Where the gateway keeps audit rows the database did not take."""
        return self.gateway_audit_spool or self.state_dir.resolve() / "gateway" / "audit-spool.jsonl"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    def topic(self, spec: TopicSpec) -> str:
        """The full name of a project topic under this deployment's namespace."""
        return f"{self.topic_namespace}{spec.name}"

    @property
    def quiet_after_s(self) -> float:
        """Wall-clock seconds without a snapshot after which a stream worker takes a partition or a node for
        quiet (nothing in flight): two collector intervals and two ingest batch windows."""
        return 2 * self.sample_interval_s + 2 * self.ingest_batch_seconds

    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server."""
        return int(self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def pgpass_file(self) -> Path:
        """The local cluster's passwords, one `*:*:*:role:password` line per role (a libpq password file)."""
        return self.state_dir.resolve() / "pgpass"

    def local_role_url(self, role: str, database: str = "kcloud") -> str:
        """URL of `database` on the project's own cluster as `role`, with its password from `pgpass_file`
        (none before `infra up` made it)."""
        password = local_passwords(self.pgpass_file).get(role)
        auth = f"{role}:{password}" if password else role
        return f"postgresql://{auth}@127.0.0.1:{self.pg_port}/{database}"

    @property
    def local_database_url(self) -> str:
        """URL of the project's own cluster (what `infra up` starts) as its superuser `kcloud`."""
        return self.local_role_url(LOCAL_SUPERUSER)

    @property
    def effective_database_url(self) -> str:
        """The database every stage talks to: `database_url` if set, else the local cluster as the service
        role."""
        return self.database_url or self.local_role_url(LOCAL_SERVICE_ROLE)

    @property
    def migration_database_url(self) -> str:
        """The database migrations run in, as the schema owner: `owner_database_url`, else `database_url`,
        else the local cluster as its owner role."""
        return self.owner_database_url or self.database_url or self.local_role_url(LOCAL_OWNER_ROLE)


#: the roles of the project's own cluster: its superuser, the schema owner, the service
LOCAL_SUPERUSER = "kcloud"
LOCAL_OWNER_ROLE = "kcloud_owner"
LOCAL_SERVICE_ROLE = "kcloud_service"


def local_passwords(path: Path) -> dict[str, str]:
    """Role -> password from a libpq password file (`host:port:db:role:password` lines); empty if absent."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) == 5 and not line.startswith("#"):
            found.setdefault(parts[3], parts[4])
    return found


def _field_names() -> set[str]:
    return set(Settings.model_fields)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _field_names())
    if unknown:
        raise SettingsError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; known keys are listed by `kcloud config show`"
        )
    return data


def _check_environment() -> None:
    known = {ENV_PREFIX + name.upper() for name in _field_names()} | {_CONFIG_ENV}
    unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        raise SettingsError(
            f"unknown environment variable(s) {', '.join(unknown)}; known ones are "
            f"{ENV_PREFIX}<KEY> for the keys listed by `kcloud config show`"
        )


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings from defaults, the TOML file, the environment and `overrides`.

    Raises `SettingsError` naming the key at fault.
    """
    _check_environment()
    path = config_file
    if path is None and os.environ.get(_CONFIG_ENV):
        path = Path(os.environ[_CONFIG_ENV])
    if path is None and _DEFAULT_CONFIG.exists():
        path = _DEFAULT_CONFIG
    file_values = _read_toml(path) if path is not None else {}
    try:
        from_env = Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc, "environment")) from exc
    present = {name.upper() for name in os.environ}
    env_set = {k for k in _field_names() if ENV_PREFIX + k.upper() in present}
    merged: dict[str, Any] = dict(file_values)
    merged.update({k: getattr(from_env, k) for k in env_set})
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, str(path) if path else "settings")) from exc


def _describe(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "?"
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)
