"""The settings of one `kcloud` invocation, for every stage's command group.

The root command stores its global options (`--config`, `--state-dir`) in the click context; each
subcommand asks `settings_from(ctx)` for the settings in force, so a group defined in another package
honours the same options, variables and TOML file as the root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click
import typer

from kcloud.settings import Settings, SettingsError, load_settings

__all__ = ["fail", "settings_from"]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one message for the operator on stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def settings_from(ctx: typer.Context | click.Context) -> Settings:
    """Settings for this invocation: the root's `--config`/`--state-dir`, then KCLOUD_* variables and defaults."""
    obj: Any = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    config: Path | None = None
    overrides: dict[str, object] = {}
    if isinstance(obj, dict):
        if isinstance(obj.get("settings"), Settings):
            found: Settings = obj["settings"]
            return found
        config = obj.get("config")
        overrides = dict(obj.get("overrides") or {})
    try:
        return load_settings(config, overrides)
    except SettingsError as exc:
        fail(f"kcloud: configuration error: {exc}", 2)
