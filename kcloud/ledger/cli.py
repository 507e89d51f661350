"""`kcloud ledger`: prove the deployment ledger intact and hand out signed checkpoints of its head.

kcloud ledger verify                      exit 0 and the head hash, or exit 1 naming the first broken row
kcloud ledger checkpoint --out FILE       a signed statement of the head for program managers
kcloud ledger check-checkpoint FILE       the signature holds and the ledger still begins with those rows
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from kcloud.cli_context import fail, settings_from
from kcloud.ledger.checkpoint import (
    CheckpointError,
    load_or_create_key,
    public_key_text,
    read_checkpoint,
    sign_checkpoint,
)
from kcloud.ledger.verify import VerifyResult, verify_ledger
from kcloud.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="The hash-chained deployment ledger (the K-Cloud evidence).", no_args_is_help=True)


def _connect(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(settings.effective_database_url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        fail(f"kcloud ledger: cannot reach the database: {str(exc).strip()}")


def _verify(settings: Settings, until_rows: int | None = None) -> VerifyResult:
    with _connect(settings) as conn:
        try:
            return verify_ledger(conn, until_rows=until_rows)
        except psycopg.errors.UndefinedTable:
            fail("kcloud ledger: the database has no deployment_events table; run `kcloud db migrate` first")


def _key_path(settings: Settings) -> Path:
    return settings.ledger_key_file or settings.state_dir / "keys" / "ledger-ed25519.pem"


@app.command("verify")
def verify_command(ctx: typer.Context) -> None:
    """Recompute the hash of every ledger row in order; exit 1 naming the first row that breaks the chain."""
    result = _verify(settings_from(ctx))
    if result.broken is not None:
        typer.echo(
            f"ledger BROKEN at seq {result.broken.seq}: {result.broken.reason}; "
            f"{result.rows} row(s) before it are intact",
            err=True,
        )
        raise typer.Exit(1)
    if result.rows == 0:
        typer.echo("ledger intact: empty (no deployment events yet)")
        return
    typer.echo(f"ledger intact: {result.rows} row(s), head seq {result.head_seq}, head hash {result.head_hash}")


@app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint JSON.")] = Path(
        "ledger-checkpoint.json"
    ),
) -> None:
    """Verify the ledger, then write its head (hash, row count, time) signed with the service's Ed25519 key."""
    settings = settings_from(ctx)
    result = _verify(settings)
    if result.broken is not None:
        fail(f"kcloud ledger: refusing to sign a broken ledger (seq {result.broken.seq}: {result.broken.reason})")
    key_path = _key_path(settings)
    try:
        key, created = load_or_create_key(key_path)
    except CheckpointError as exc:
        fail(f"kcloud ledger: {exc}")
    if created:
        typer.echo(f"created signing key {key_path} (public key {public_key_text(key)})")
    checkpoint = sign_checkpoint(key, result.rows, result.head_seq, result.head_hash)
    out.write_text(checkpoint.to_json())
    typer.echo(f"checkpoint of {result.rows} row(s), head {result.head_hash}, signed; written to {out}")


@app.command("check-checkpoint")
def check_checkpoint_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A checkpoint written by `kcloud ledger checkpoint`.")],
    public_key: Annotated[
        str | None, typer.Option(help="The service's public key (base64) to trust instead of the one in the file.")
    ] = None,
) -> None:
    """Check a checkpoint's signature and that today's ledger still begins with exactly the rows it names."""
    try:
        checkpoint = read_checkpoint(file)
        checkpoint.check_signature(public_key)
    except CheckpointError as exc:
        fail(f"kcloud ledger: {exc}")
    result = _verify(settings_from(ctx), until_rows=checkpoint.row_count)
    if result.broken is not None:
        fail(f"kcloud ledger: the ledger is broken at seq {result.broken.seq}: {result.broken.reason}")
    if result.rows != checkpoint.row_count or result.head_hash != checkpoint.head_hash:
        fail(
            f"kcloud ledger: the checkpoint names {checkpoint.row_count} row(s) ending in {checkpoint.head_hash}, "
            f"but the ledger's first {result.rows} row(s) end in {result.head_hash}"
        )
    typer.echo(
        f"checkpoint holds: signed {checkpoint.created_at}; the ledger still begins with its "
        f"{checkpoint.row_count} row(s) ending in {checkpoint.head_hash}"
    )
