"""`kcloud dashboards ...`: build the Grafana provisioning files, or publish to a running Grafana.

    kcloud dashboards build      write infra/grafana/provisioning/ (datasource, provider, dashboards, alerts)
    kcloud dashboards publish    create or update the datasource and dashboards through Grafana's HTTP API

The datasource's `timescaledb` flag must match the database, since Grafana's `$__timeGroup` emits
`time_bucket` when it is set: both commands read the storage mode recorded by `kcloud db migrate`
(kcloud/db/mode.py) from the configured database, or take `--timescaledb/--no-timescaledb` when there
is no database to ask. Errors print one message and exit with status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import psycopg
import typer
from niquests.exceptions import RequestException

from dashboards.provisioning import DEFAULT_OUT, build_files, datasource_model, write_files
from dashboards.publish import PublishError, connect_grafana, publish
from kcloud.cli_context import settings_from
from kcloud.db.mode import probe_timescaledb, recorded_mode
from kcloud.settings import Settings

__all__ = ["app", "detect_timescaledb"]

app = typer.Typer(
    help="Grafana dashboards as code: build the provisioning files, or publish to a running Grafana.",
    no_args_is_help=True,
)

_TIMESCALE_HELP = (
    "Set the datasource's timescaledb flag instead of asking the database (needed when no database is "
    "reachable). Default: what the configured database has."
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"kcloud dashboards: {message}", err=True)
    raise typer.Exit(1)


def _settings(ctx: typer.Context) -> Settings:
    """The settings in force: the root command's `--config`/`--state-dir`, the KCLOUD_* variables, the
    defaults (`kcloud.cli_context`, as every command group)."""
    return settings_from(ctx)


def detect_timescaledb(url: str) -> bool:
    """Whether the database at `url` stores its time series on TimescaleDB: the mode `kcloud db migrate`
    recorded, else whether the extension is installed. Raises `psycopg.OperationalError` when the
    database cannot be reached."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        recorded = recorded_mode(conn)
        if recorded is not None:
            return recorded[0] == "timescaledb"
        return probe_timescaledb(conn).installed_version is not None


def _timescaledb(settings: Settings, flag: bool | None) -> bool:
    if flag is not None:
        return flag
    url = settings.effective_database_url
    try:
        return detect_timescaledb(url)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(
            f"cannot ask the database at {_redact(url)} whether it runs TimescaleDB ({first}); start it "
            "(`kcloud infra up`), set KCLOUD_DATABASE_URL, or pass --timescaledb / --no-timescaledb"
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


@app.command("build")
def build_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder to write the provisioning files into.")] = DEFAULT_OUT,
    timescaledb: Annotated[bool | None, typer.Option("--timescaledb/--no-timescaledb", help=_TIMESCALE_HELP)] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when the files under --out are not up to date.")
    ] = False,
) -> None:
    """Write the dashboards' JSON, the datasource and dashboard-provider YAML and the alert rules.

    Point Grafana's provisioning folder (/etc/grafana/provisioning) at the output folder and set
    GRAFANA_KCLOUD_DB_HOST, _NAME, _USER, _PASSWORD and _SSLMODE in Grafana's environment.
    """
    flag = _timescaledb(_settings(ctx), timescaledb)
    try:
        changes = write_files(out, build_files(timescaledb=flag), dry_run=check)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc}")
    changed = [c for c in changes if c.change != "unchanged"]
    for change in changed:
        typer.echo(f"{change.change if not check else 'out of date (' + change.change + ')'}: {out / change.path}")
    if check and changed:
        _fail(f"{len(changed)} file(s) under {out} are not up to date; run `kcloud dashboards build`")
    typer.echo(
        f"{len(changes) - len(changed)} file(s) unchanged, {len(changed)} changed under {out} (timescaledb: {flag})"
    )


@app.command("publish")
def publish_command(  # noqa: PLR0917 (typer maps parameters to options)
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. http://grafana.example:3000.")],
    token: Annotated[
        str | None,
        typer.Option(help="Service-account or API token (Bearer); without it, user:password in --url is used."),
    ] = None,
    folder: Annotated[str | None, typer.Option(help="Folder to put the dashboards in (created if missing).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL URL Grafana should query [default: the configured database]."),
    ] = None,
    timescaledb: Annotated[bool | None, typer.Option("--timescaledb/--no-timescaledb", help=_TIMESCALE_HELP)] = None,
    force_datasource: Annotated[
        bool, typer.Option(help="Write the datasource even when it looks unchanged (e.g. a new password).")
    ] = False,
) -> None:
    """Create or update the datasource and every dashboard in a running Grafana; says for each whether it
    was created, updated or unchanged. Running it again changes nothing."""
    settings = _settings(ctx)
    db_url = database_url or settings.effective_database_url
    flag = _timescaledb(settings.model_copy(update={"database_url": db_url}), timescaledb)
    parts = urlsplit(db_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        _fail(f"database URL {_redact(db_url)} is not a postgresql://user@host:port/database URL")
    datasource = datasource_model(
        timescaledb=flag,
        url=f"{parts.hostname}:{parts.port or 5432}",
        database=parts.path.lstrip("/") or "postgres",
        user=parts.username or "postgres",
        password=parts.password,
        sslmode="disable" if parts.hostname in ("127.0.0.1", "localhost") else "require",
    )
    try:
        outcomes = publish(connect_grafana(url, token), datasource, folder, force_datasource=force_datasource)
    except PublishError as exc:
        _fail(str(exc))
    except RequestException as exc:
        _fail(f"cannot reach Grafana at {url}: {exc}")
    for outcome in outcomes:
        typer.echo(outcome.line())
