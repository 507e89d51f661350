"""`kcloud db ...`: the database commands (mounted by console/main.py as `kcloud db`).

    kcloud db migrate    apply the missing migrations (prints what was applied, or "up to date")
    kcloud db status     storage mode and why, migrations, partitions or hypertables, row counts

Settings come from the parent command's context (`ctx.obj`, a `Settings` or a dict holding one under
"settings") or, when run on its own, from `kcloud.settings.load_settings()`. Errors print one message
for the operator on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer

from kcloud.cli_context import settings_from
from kcloud.db.errors import DatabaseError
from kcloud.db.migrate import migrate
from kcloud.db.status import db_status
from kcloud.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="Database: migrations, storage mode and status.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _settings(ctx: typer.Context) -> Settings:
    return settings_from(ctx)


@app.command("migrate")
def migrate_command(ctx: typer.Context) -> None:
    """Apply the migrations this database is missing; running it again changes nothing."""
    settings = _settings(ctx)
    try:
        report = migrate(settings.migration_database_url, settings)
    except DatabaseError as exc:
        _fail(str(exc))
    for migration in report.applied:
        typer.echo(f"applied {migration.label}")
    if not report.applied:
        typer.echo("up to date")
    if report.partitions_created:
        typer.echo(f"made {len(report.partitions_created)} daily partition(s) ahead")
    if report.vendors_changed:
        typer.echo(f"seeded {report.vendors_changed} vendor(s) from kcloud/catalog.yaml")
    for change in report.policies_changed:
        typer.echo(f"policy: {change}")
    typer.echo(f"storage: {report.mode.mode} {report.mode.version} ({report.mode.reason})")


@app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    estimate: Annotated[
        bool,
        typer.Option("--estimate", help="Planner estimates for the big time-series tables instead of count(*)."),
    ] = False,
) -> None:
    """Show the storage mode and why, migrations applied and pending, partitions or hypertables, rows."""
    settings = _settings(ctx)
    try:
        status = db_status(settings.effective_database_url, settings, exact=not estimate)
    except DatabaseError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(status.to_dict(), indent=2, default=str))
    else:
        typer.echo("\n".join(status.lines()))
