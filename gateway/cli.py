"""`kcloud vendor ...`: vendors and their push tokens (mounted by console/main.py; `kcloud gateway`, which
serves the API with the routers of the other stages, is `console.gateway_cmd`).

    kcloud vendor add NAME --domestic|--foreign            register a vendor
    kcloud vendor list                                     the registered vendors
    kcloud vendor token create --vendor NAME [--label L] [--expires D]
                                                           issue a vendor token (printed once)
    kcloud vendor token create --role program-manager      a token of no vendor, reading reports
    kcloud vendor token revoke ID                          revoke it (401 from then on)
    kcloud vendor token list [--vendor NAME] [--live]      tokens, without their secrets

Errors an operator can fix are one line on stderr and exit status 1.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from gateway.tokens import CROSS_VENDOR_ROLES, DEFAULT_EXPIRY, ROLES
from kcloud.cli_context import current_settings
from kcloud.db.connect import Connection
from kcloud.db.errors import DatabaseError
from kcloud.settings import Settings

__all__ = ["vendor_app"]

vendor_app = typer.Typer(help="Register vendors and manage their push tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Issue, revoke and list the push tokens of vendors.", no_args_is_help=True)
vendor_app.add_typer(token_app, name="token")


def _settings() -> Settings:
    return current_settings()


def _fail(message: str) -> NoReturn:
    typer.echo(f"kcloud: {message}", err=True)
    raise typer.Exit(1)


def _connect(s: Settings) -> Connection:
    from kcloud.db.connect import connect

    return connect(s.effective_database_url)


@vendor_app.command("add")
def vendor_add(
    name: Annotated[str, typer.Argument(help="The vendor's slug, as in the `vendor` field of device samples.")],
    domestic: Annotated[
        bool, typer.Option("--domestic/--foreign", help="A Korean vendor (--domestic) or not (--foreign).")
    ],
    display_name: Annotated[str | None, typer.Option(help="Name shown in reports [default: NAME].")] = None,
) -> None:
    """Register a vendor (or correct its display name and domestic flag)."""
    from gateway.registry import RegistryError, add_vendor

    try:
        with _connect(_settings()) as conn:
            typer.echo(add_vendor(conn, name, domestic=domestic, display_name=display_name))
    except (RegistryError, DatabaseError) as exc:
        _fail(str(exc))


@vendor_app.command("list")
def vendor_list() -> None:
    """List the registered vendors."""
    from gateway.registry import list_vendors

    try:
        with _connect(_settings()) as conn:
            rows = list_vendors(conn)
    except DatabaseError as exc:
        _fail(str(exc))
    for v in rows:
        typer.echo(f"{v.vendor_id:16} {'domestic' if v.domestic else 'foreign':9} {v.display_name}")


@token_app.command("create")
def token_create(
    vendor: Annotated[
        str | None,
        typer.Option(help="The vendor a `vendor` token pushes for (required for it; refused for program-manager)."),
    ] = None,
    role: Annotated[
        str,
        typer.Option(
            help=f"What the token may do: {' or '.join(ROLES)}. A program-manager token reads every vendor's "
            "reports and belongs to no vendor."
        ),
    ] = "vendor",
    label: Annotated[str | None, typer.Option(help="A note for operators, e.g. who holds the token.")] = None,
    expires: Annotated[
        str,
        typer.Option(
            help="When the token stops working (401 expired_token): a duration from now (90d, 12h, 30m, 2w), "
            "an ISO date or time (2027-06-30, 2027-06-30T18:00:00+09:00; UTC unless an offset is given), "
            "or `never`.",
        ),
    ] = DEFAULT_EXPIRY,
) -> None:
    """Issue a token; it is printed once and only its salted hash is stored."""
    from gateway.registry import RegistryError, create_token
    from gateway.tokens import BadExpiry, parse_expiry

    if role in CROSS_VENDOR_ROLES and vendor is not None:
        _fail(f"a {role} token reads every vendor's reports and belongs to no vendor: leave out --vendor {vendor}")
    if role not in CROSS_VENDOR_ROLES and role in ROLES and vendor is None:
        _fail(f"a {role} token pushes for one vendor: name it with --vendor NAME (`kcloud vendor list` shows them)")
    try:
        expires_at = parse_expiry(expires)
    except BadExpiry as exc:
        _fail(str(exc))
    try:
        with _connect(_settings()) as conn:
            issued = create_token(conn, vendor, role=role, label=label, expires_at=expires_at)
    except (RegistryError, DatabaseError) as exc:
        _fail(str(exc))
    typer.echo(issued.text)
    whose = f"{role} of {vendor}" if vendor else role
    until = f"expires {expires_at.strftime('%Y-%m-%d %H:%M:%SZ')}" if expires_at else "never expires"
    typer.echo(
        f"token id {issued.token_id} ({whose}, {until}): copy the token above now, it is not stored and "
        f"cannot be shown again; revoke it with `kcloud vendor token revoke {issued.token_id}`",
        err=True,
    )


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (or the whole token).")]) -> None:
    """Revoke a token: every request with it is refused with 401 from now on."""
    from gateway.registry import RegistryError, revoke_token

    try:
        with _connect(_settings()) as conn:
            row = revoke_token(conn, token_id)
    except (RegistryError, DatabaseError) as exc:
        _fail(str(exc))
    assert row.revoked_at is not None
    whose = f"of {row.vendor_id}" if row.vendor_id else f"({row.role})"
    typer.echo(f"token {row.token_id} {whose} revoked (at {row.revoked_at.isoformat()})")


@token_app.command("list")
def token_list(
    vendor: Annotated[str | None, typer.Option(help="Only the tokens of this vendor.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Leave out revoked and expired tokens.")] = False,
) -> None:
    """List tokens (id, vendor, role, created, expires, revoked, label); secrets are never stored.

    A cross-vendor token (program-manager) shows `-` as its vendor; EXPIRES is `never` or the time, with
    `(expired)` once it has passed.
    """
    from datetime import UTC, datetime

    from gateway.registry import list_tokens

    try:
        with _connect(_settings()) as conn:
            rows = list_tokens(conn, vendor, include_revoked=not live)
    except DatabaseError as exc:
        _fail(str(exc))
    if not rows:
        typer.echo("no tokens" + (f" for {vendor}" if vendor else ""))
        return
    now = datetime.now(UTC)
    stamp = "%Y-%m-%d %H:%M:%SZ"
    typer.echo(f"{'ID':12}  {'VENDOR':12}  {'ROLE':15}  {'CREATED':20}  {'EXPIRES':30}  {'REVOKED':20}  LABEL")
    for t in rows:
        revoked = t.revoked_at.astimezone(UTC).strftime(stamp) if t.revoked_at else "-"
        if t.expires_at is None:
            expires = "never"
        else:
            expires = t.expires_at.astimezone(UTC).strftime(stamp) + (" (expired)" if t.expires_at <= now else "")
        typer.echo(
            f"{t.token_id:12}  {t.vendor_id or '-':12}  {t.role:15}  "
            f"{t.created_at.astimezone(UTC).strftime(stamp):20}  {expires:30}  {revoked:20}  {t.label or ''}"
        )
