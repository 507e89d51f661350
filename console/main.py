"""The `kcloud` command: one entry point whose subcommands delegate to the pipeline stages.

Every subcommand reads the same settings (`--config FILE`, `KCLOUD_*` variables, defaults); errors
an operator can fix are printed as one clear message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from console.cli_help import polish
from kcloud import __version__
from kcloud.cli_context import current_context, current_settings
from kcloud.errors import ServiceError
from kcloud.ledger.keys import LedgerKeyError
from kcloud.settings import Settings, SettingsError, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="kcloud-observatory: GPU and domestic-NPU fleet telemetry, deployment evidence and dashboards.",
    epilog="Example: kcloud demo --duration 60; then kcloud status, kcloud alerts. Every command's --help has one.",
    no_args_is_help=True,
    add_completion=False,  # `kcloud completion SHELL` prints the script instead
    pretty_exceptions_enable=False,
)
infra_app = typer.Typer(
    help="Start, stop and check the local Kafka broker and PostgreSQL cluster.", no_args_is_help=True
)
config_app = typer.Typer(help="Show the settings in force and where they come from.", no_args_is_help=True)
streams_app = typer.Typer(help="Run the faust stream processors (ingest into the database).", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(config_app, name="config")
app.add_typer(streams_app, name="streams")
device_app = typer.Typer(
    help="Record what happens to a device outside the telemetry (decommissioning).", no_args_is_help=True
)
app.add_typer(device_app, name="device")


#: (module, typer-app attribute, command name, one-line purpose) of the stages' own command groups
_SUBAPPS: list[tuple[str, str, str, str]] = [
    ("kcloud.db.cli", "app", "db", "Apply database migrations and show the storage mode in force."),
    ("kcloud.ledger.cli", "app", "ledger", "Verify the deployment ledger's hash chain; sign checkpoints."),
    (
        "reports.cli",
        "app",
        "report",
        "Build and verify the K-Cloud evidence and allocation reports for program managers.",
    ),
    (
        "console.gateway_cmd",
        "gateway_app",
        "gateway",
        "Serve the authenticated HTTP endpoint where vendors push telemetry.",
    ),
    ("gateway.cli", "vendor_app", "vendor", "Register vendors and manage their push tokens."),
    ("collectors.cli", "app", "collect", "Run a node agent: a telemetry source to Kafka, or NDJSON with --print."),
    (
        "dashboards.cli",
        "app",
        "dashboards",
        "Build Grafana dashboards and provisioning files; publish them to a Grafana.",
    ),
]


def _mount_subapps() -> None:
    import importlib

    for module, attr, name, purpose in _SUBAPPS:
        app.add_typer(getattr(importlib.import_module(module), attr), name=name, help=purpose)


_mount_subapps()


class _State:
    config: Path | None = None
    overrides: dict[str, object] = {}  # noqa: RUF012


def settings() -> Settings:
    """The settings for this invocation (global options applied): `kcloud.cli_context.settings_from`, the
    one accessor every command group uses; outside a command, the global options last given."""
    if current_context() is not None:
        return current_settings()
    return load_settings(_State.config, dict(_State.overrides))


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kcloud-observatory {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML settings file (default ./kcloud.toml if present).")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where local Kafka and PostgreSQL keep data and logs (default .kcloud)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    _State.config = config
    _State.overrides = {"state_dir": state_dir} if state_dir else {}
    ctx.obj = {"config": config, "overrides": dict(_State.overrides)}


# -- infra ------------------------------------------------------------------------------------------
@infra_app.command("up")
def infra_up() -> None:
    """Start PostgreSQL and Kafka (fetching the broker jars on first use); no-op when both are healthy."""
    from infra import stack

    for line in stack.up(settings()):
        typer.echo(line)


@infra_app.command("down")
def infra_down() -> None:
    """Stop what `infra up` started (an external KCLOUD_DATABASE_URL server is left alone)."""
    from infra import stack

    for line in stack.down(settings()):
        typer.echo(line)


@infra_app.command("status")
def infra_status() -> None:
    """Say whether Kafka and PostgreSQL answer; exit 1 when either does not."""
    from infra import stack

    st = stack.status(settings())
    for line in st.lines():
        typer.echo(line)
    raise typer.Exit(0 if st.healthy else 1)


# -- config -----------------------------------------------------------------------------------------
@config_app.command("show")
def config_show() -> None:
    """Print every setting with its value in force and its meaning."""
    s = settings()
    for name, field in Settings.model_fields.items():
        typer.echo(f"{name:24} = {getattr(s, name)!s:32}  # KCLOUD_{name.upper()}: {field.description}")


# -- streams ----------------------------------------------------------------------------------------
@streams_app.command("worker")
def streams_worker(
    web_port: Annotated[int | None, typer.Option(help="Port of this worker's web server (one per worker).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level: debug, info, warning, error.")] = "info",
) -> None:
    """Run one stream worker; start N of them to share the load (same consumer group)."""
    from streams.app import run_worker

    s = settings()
    if web_port is not None:
        s = s.model_copy(update={"worker_web_port": web_port})
    run_worker(s, loglevel=loglevel)


@app.command("demo")
def demo(
    nodes: Annotated[int, typer.Option(min=1, help="Simulated nodes (8 accelerators each).")] = 50,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between a node's snapshots.")] = 5.0,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Stop after this many seconds.", show_default="run until Ctrl-C"),
    ] = None,
    gateway: Annotated[bool, typer.Option(help="Also run the vendor push gateway.")] = True,
) -> None:
    """Run the whole service on a simulated fleet, supervised, with a live summary.

    Starts Kafka and PostgreSQL, applies the migrations, then runs a stream worker, the vendor gateway
    and a simulated-fleet collector in this terminal; Ctrl-C (or --duration) stops everything cleanly
    and prints what was delivered and stored.

    Example: kcloud demo --nodes 200 --duration 60
    """
    from console.demo import run_demo

    r = run_demo(settings(), nodes=nodes, interval_s=interval, duration_s=duration, with_gateway=gateway)
    typer.echo(
        f"collector delivered {r.snapshots_delivered} snapshots; {r.snapshots_stored} stored "
        f"({r.samples_stored} device samples) in {r.seconds:.0f}s"
    )
    typer.echo(f"{r.deadlettered} malformed message(s) dead-lettered with their reason; {r.open_alerts} open alert(s)")
    verdict = "intact, every append signed by the trusted key"
    if not r.ledger_ok:
        verdict = "BROKEN or not verifiable (see kcloud ledger verify)"
    typer.echo(f"ledger: {r.ledger_rows} deployment event(s), {verdict}")
    if r.snapshots_stored < r.snapshots_delivered or not r.ledger_ok:
        raise typer.Exit(1)


@device_app.command("decommission")
def device_decommission(
    device_uuid: Annotated[str, typer.Argument(help="The device's uuid (GPU- prefix optional).")],
    reason: Annotated[str, typer.Option(help="Why, in words a program manager will read in the ledger.")],
) -> None:
    """Append a `decommissioned` event for a device to the ledger and publish it on kcloud.deployments.v1."""
    from datetime import UTC, datetime

    import psycopg

    from kcloud.records import canonical_device_uuid
    from kcloud.topics import DEPLOYMENTS
    from streams.deployments import LifecycleRecorder

    s = settings()
    uuid = canonical_device_uuid(device_uuid)
    try:
        with psycopg.connect(s.effective_database_url) as conn, conn.transaction():
            event = LifecycleRecorder(s).decommission(conn, uuid, datetime.now(UTC), reason)
    except LookupError as exc:
        typer.echo(f"kcloud: {exc}", err=True)
        raise typer.Exit(1) from exc
    if event is None:
        typer.echo(f"device {uuid} is already decommissioned; nothing recorded")
        return
    from kafka import KafkaProducer

    from kcloud.kafka_client import producer_config

    producer = KafkaProducer(**producer_config(s, client_id="kcloud-cli", linger_ms=0))
    producer.send(s.topic(DEPLOYMENTS), key=event.node_id.encode(), value=event.model_dump_json().encode())
    producer.flush(timeout=30)
    producer.close()
    typer.echo(f"device {uuid} decommissioned at {event.at.isoformat()} ({reason}); recorded in the ledger")


# -- status, alerts, completion ------------------------------------------------------------------
@app.command("status")
def status() -> None:
    """Every component in one look: PostgreSQL, Kafka, storage mode, stream workers and their lag, the
    gateway, open alerts and the ledger head; exit 1 when one has FAILed (`--`: not running).
    """
    from console.ops import FAIL, status_checks

    checks = status_checks(settings())
    for check in checks:
        typer.echo(check.line())
    raise typer.Exit(1 if any(c.state == FAIL for c in checks) else 0)


def _duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `7d` (a bare number is hours)."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in units else "h"
    number = raw[:-1] if raw and raw[-1] in units else raw
    try:
        value = float(number)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 15m, 24h or 7d") from None
    if value <= 0:
        raise typer.BadParameter(f"{text!r}: a duration must be positive")
    return timedelta(**{units[unit]: value})


@app.command("alerts")
def alerts(  # noqa: PLR0917 (typer maps parameters to options)
    open_only: Annotated[bool, typer.Option("--open", help="Only the alerts still open.")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="Only the alerts resolved.")] = False,
    since: Annotated[
        str,
        typer.Option(help="Started or resolved within this long (90s, 15m, 24h, 7d); open ones always show."),
    ] = "24h",
    rule: Annotated[
        str | None,
        typer.Option(help="Only this rule: node_silent, temp_high, health_failed, ecc_rising.", show_default="all"),
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only this severity: warning or critical.", show_default="all")
    ] = None,
    node: Annotated[str | None, typer.Option(help="Only nodes whose id starts with this.", show_default="all")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
) -> None:
    """The alerts the stream workers opened and resolved: open ones first, then the recent ones.

    Example: kcloud alerts --open --severity critical
    """
    import psycopg

    from console.ops import fetch_alerts

    if open_only and resolved:
        raise typer.BadParameter("--open and --resolved exclude each other; give one or neither")
    state = "open" if open_only else "resolved" if resolved else "all"
    window = _duration(since)
    s = settings()
    try:
        with psycopg.connect(s.effective_database_url, connect_timeout=5) as conn:
            rows = fetch_alerts(conn, state=state, since=window, rule=rule, severity=severity, node=node, limit=limit)
    except psycopg.Error as exc:
        typer.echo(f"kcloud: cannot read the alerts: {str(exc).strip().splitlines()[0]}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        for row in rows:
            typer.echo(row.to_json())
        return
    if not rows:
        typer.echo(f"no {'' if state == 'all' else state + ' '}alerts within {since} matching the filters")
        return
    typer.echo(f"{'state':<8} {'started (UTC)':<19} {'severity':<8} {'rule':<13} {'node':<16} summary")
    for row in rows:
        when = row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        shown = "open" if row.resolved_at is None else "resolved"
        typer.echo(f"{shown:<8} {when:<19} {row.severity:<8} {row.rule:<13} {row.node_id or '-':<16} {row.summary}")


class _Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


@app.command("completion")
def completion(shell: Annotated[_Shell, typer.Argument(help="bash, zsh, fish or powershell.")]) -> None:
    """Print the shell completion script for `kcloud` (commands, options, choices) to load in your shell."""
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name="kcloud", complete_var="_KCLOUD_COMPLETE", shell=shell.value))


polish(app)


def _enable_completion() -> None:
    """Answer the shells' completion requests (`_KCLOUD_COMPLETE=complete_bash ...`, sent by the script that
    `kcloud completion` prints): typer registers its completion classes only for its own
    `--install-completion` option, which `kcloud` does not use."""
    from typer._completion_classes import completion_init

    completion_init()


_enable_completion()


def main() -> None:
    """Console-script entry point: run the CLI, turning operator-fixable errors into clean messages."""
    try:
        app()
    except SettingsError as exc:
        typer.echo(f"kcloud: configuration error: {exc}", err=True)
        sys.exit(2)
    except ServiceError as exc:
        typer.echo(f"kcloud: {exc}", err=True)
        sys.exit(1)
    except LedgerKeyError as exc:  # e.g. a signing key others may read: refused, with how to fix it
        typer.echo(f"kcloud: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
