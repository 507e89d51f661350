"""The settings of one `kcloud` invocation, for every stage's command group.

The root command stores its global options (`--config`, `--state-dir`) in the click context; each
subcommand asks `settings_from(ctx)` for the settings in force, so a group defined in another package
honours the same options, variables and TOML file as the root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from kcloud.settings import Settings, SettingsError, load_settings

__all__ = ["current_context", "current_settings", "fail", "settings_from"]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one message for the operator on stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def settings_from(ctx: Any) -> Settings:
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


def current_context() -> Any:
    """The click context of the command running now, or None: typer runs on a click of its own."""
    try:
        from typer._click import globals as click_globals
    except ImportError:  # a typer that uses the click package itself
        import click.globals as click_globals  # type: ignore[no-redef]
    return click_globals.get_current_context(silent=True)


def current_settings() -> Settings:
    """`settings_from` the command running now, for a command that takes no context argument; the
    variables and defaults when no command runs."""
    ctx = current_context()
    if ctx is not None:
        return settings_from(ctx)
    try:
        return load_settings()
    except SettingsError as exc:
        fail(f"kcloud: configuration error: {exc}", 2)
