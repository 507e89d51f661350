"""What every `kcloud ... --help` shows beyond its options: an example of each command, and help texts that
survive the terminal renderer.

`console/main.py` calls `polish(app)` once, after every stage's command group is mounted. It

- escapes Rich markup in option help texts, so that a literal `[default: …]` written by a command group
  (an option whose default is computed, e.g. from a setting) is shown instead of being taken for a style;
- adds an `Example:` epilog, from `EXAMPLES`, to every command whose own help has none.

Imports typer only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_name
from typer.models import CommandInfo, DefaultPlaceholder

__all__ = ["EXAMPLES", "GROUP_EXAMPLES", "EscapedCommand", "EscapedGroup", "commands", "escape_markup", "polish"]

#: example invocations, by command path, for the commands whose docstring shows none
EXAMPLES: dict[str, str] = {
    "status": "kcloud status          # every component; exit 1 when one is down",
    "alerts": "kcloud alerts --open --rule temp_high --since 24h",
    "completion": 'kcloud completion bash > ~/.kcloud-complete.bash && echo ". ~/.kcloud-complete.bash" >> ~/.bashrc',
    "infra up": "kcloud infra up && kcloud infra status",
    "infra down": "kcloud infra down",
    "infra status": "kcloud infra status || kcloud infra up",
    "config show": "kcloud config show | grep partitions   # KCLOUD_KAFKA_PARTITIONS=12 changes it",
    "streams worker": "kcloud streams worker --web-port 6067   # a second worker beside one on 6066",
    "device decommission": 'kcloud device decommission GPU-5f2c... --reason "moved to the Gwangju pool"',
    "db migrate": "kcloud db migrate",
    "db status": "kcloud db status --json | jq .mode",
    "ledger verify": "kcloud ledger verify --checkpoint cp.json",
    "ledger checkpoint": "kcloud ledger checkpoint --out cp.json",
    "ledger check-checkpoint": "kcloud ledger check-checkpoint cp.json",
    "report evidence": "kcloud report evidence --from 2026-01-01 --to 2026-03-31 --lang ko --out q1.pdf",
    "report allocation": "kcloud report allocation --from 2026-01-01 --to 2026-03-31 --out q1-allocation.csv",
    "report verify": "kcloud report verify q1.json",
    "vendor add": 'kcloud vendor add furiosa --domestic --display-name "FuriosaAI"',
    "vendor list": "kcloud vendor list",
    "vendor token create": 'kcloud vendor token create furiosa --label "RNGD fleet, ops@vendor.example"',
    "vendor token revoke": "kcloud vendor token revoke 3f9a0c1b2d4e",
    "vendor token list": "kcloud vendor token list --vendor furiosa --live",
    "dashboards build": "kcloud dashboards build --check || kcloud dashboards build",
    "dashboards publish": 'kcloud dashboards publish --url https://grafana.example --token "$GRAFANA_TOKEN"',
}

#: the groups that run something themselves (a callback invoked without a subcommand)
GROUP_EXAMPLES: dict[str, str] = {
    "gateway": "kcloud gateway --host 0.0.0.0 --port 8470",
}

# Rich takes `[` followed by a lowercase letter, `#`, `/` or `@` for the start of a style tag
_TAG = re.compile(r"(?<!\\)\[(?=[a-z#/@])")


def escape_markup(text: str) -> str:
    """`text` with every would-be Rich tag escaped (idempotent: an escaped one is left alone).

    Example:
        >>> escape_markup("Port [default: KCLOUD_GATEWAY_PORT, 8470].")
        'Port \\\\[default: KCLOUD_GATEWAY_PORT, 8470].'
    """
    return _TAG.sub(r"\\[", text)


def commands(app: typer.Typer, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], CommandInfo]]:
    """Every command of `app` and of its groups, with its path (`("vendor", "token", "create")`)."""
    for info in app.registered_commands:
        if info.callback is not None:
            yield (*path, info.name or get_command_name(info.callback.__name__)), info
    for group in app.registered_groups:
        if group.typer_instance is not None:
            name = group.name or group.typer_instance.info.name
            yield from commands(group.typer_instance, (*path, str(name)))


def _escape_params(command: Any) -> None:
    for param in command.params:
        text = getattr(param, "help", None)
        if isinstance(text, str):
            param.help = escape_markup(text)


class EscapedCommand(TyperCommand):
    """A command whose options' help texts have their would-be Rich tags escaped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _escape_params(self)


class EscapedGroup(TyperGroup):
    """A group (its own options, e.g. `kcloud gateway --host`) with help texts escaped as `EscapedCommand`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _escape_params(self)


def polish(app: typer.Typer) -> None:
    """Escape markup in every option's help and give every command without one an example epilog."""
    for path, info in commands(app):
        if info.cls is None or info.cls is TyperCommand:
            info.cls = EscapedCommand
        own = (info.help or (info.callback.__doc__ if info.callback else "") or "").lower()
        example = EXAMPLES.get(" ".join(path))
        if example and "example" not in own and not info.epilog:
            info.epilog = "Example: " + escape_markup(example)
    _polish_groups(app, ())


def _polish_groups(app: typer.Typer, path: tuple[str, ...]) -> None:
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        name = str(group.name or sub.info.name)
        if group.cls is None or group.cls is TyperGroup or isinstance(group.cls, DefaultPlaceholder):
            group.cls = EscapedGroup
        example = GROUP_EXAMPLES.get(" ".join((*path, name)))
        if example and not group.epilog:
            group.epilog = "Example: " + escape_markup(example)
        _polish_groups(sub, (*path, name))
