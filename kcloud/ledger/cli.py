"""`kcloud ledger`: prove the deployment ledger intact and hand out signed checkpoints of its head.

kcloud ledger verify                      exit 0 and the head, or exit 1 naming the first row that does not hold
kcloud ledger checkpoint                  a signed head, into the checkpoint store, the Kafka topic and --out
kcloud ledger check-checkpoint FILE       the checkpoint is the trusted key's and the ledger extends it

What a third party keeps to check the service (README, "For auditors"): the trusted public key (obtained
once, out of band), every checkpoint (files of the store, or its own consumer of the checkpoint topic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from kcloud.cli_context import fail, settings_from
from kcloud.ledger.checkpoint import Checkpoint, CheckpointError, read_checkpoint, sign_checkpoint
from kcloud.ledger.keys import LedgerKeyError, TrustedKeys, load_or_create_key, public_key_from_text, public_key_text
from kcloud.ledger.publish import (
    checkpoint_dir,
    publish_to_kafka,
    signing_key_path,
    trusted_checkpoints,
    trusted_key,
    write_to_store,
)
from kcloud.ledger.verify import VerifyResult, verify_ledger
from kcloud.settings import Settings

__all__ = ["app"]

_AUDIT = (
    "An auditor keeps the trusted public key (obtained once, out of band) and every checkpoint (the files of the "
    "checkpoint store or its own copy of the checkpoint topic); with them it proves that every row was written "
    "by the holder of the ledger key, that none was changed, removed or reordered since, and that the ledger "
    "only grew past each checkpoint."
)

app = typer.Typer(
    help="The hash-chained, signed deployment ledger (the K-Cloud evidence). " + _AUDIT, no_args_is_help=True
)

PublicKeyOption = Annotated[
    str | None,
    typer.Option(
        "--public-key",
        help="The public key (base64) to trust, instead of KCLOUD_LEDGER_PUBLIC_KEY_FILE "
        "(default: the ledger key file's .pub). A key named inside a checkpoint is never trusted.",
    ),
]
KafkaOption = Annotated[
    bool, typer.Option("--kafka/--no-kafka", help="Also read (or publish to) the checkpoint topic on Kafka.")
]


def _connect(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(settings.effective_database_url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        fail(f"kcloud ledger: cannot reach the database: {str(exc).strip()}")


def _trusted(settings: Settings, given: str | None) -> TrustedKeys | None:
    try:
        if given is not None:
            return TrustedKeys((public_key_from_text(given),), "--public-key")
        return trusted_key(settings)
    except LedgerKeyError as exc:
        fail(f"kcloud ledger: {exc}")


def _verify(
    settings: Settings, trusted: TrustedKeys | None, checkpoints: list[Checkpoint] | None = None
) -> VerifyResult:
    with _connect(settings) as conn:
        try:
            return verify_ledger(conn, trusted_key=trusted, checkpoints=checkpoints or [])
        except psycopg.errors.UndefinedColumn:
            fail("kcloud ledger: the ledger lacks the columns of migration 0008; run `kcloud db migrate` first")
        except psycopg.errors.UndefinedTable:
            fail("kcloud ledger: the database has no deployment_events table; run `kcloud db migrate` first")


def _broken_text(result: VerifyResult) -> str:
    assert result.broken is not None
    where = "past its end" if result.broken.seq is None else f"at seq {result.broken.seq}"
    return f"ledger BROKEN {where}: {result.broken.reason}; {result.rows} row(s) before it are intact"


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    public_key: PublicKeyOption = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="A checkpoint of your own to check against as well (repeatable)."),
    ] = None,
    kafka: KafkaOption = True,
) -> None:
    """Check every ledger row in order, and the ledger against every checkpoint known; exit 1 naming the
    first row that does not hold.

    Each row's hash must be the hash of its stored content, chained to the row before; its columns must
    say what the hashed content says; an append signed by the trusted key must cover it; the ledger must
    begin with exactly the rows of each checkpoint signed by the trusted key (from the checkpoint store,
    the checkpoint topic and --checkpoint files), so rows removed from its end show too. A checkpoint
    not signed by the trusted key is refused (exit 1).

    An auditor keeps the trusted public key (obtained once, out of band) and every checkpoint; with them
    this proves that every row was written by the holder of the ledger key, that none was changed,
    removed or reordered since, and that the ledger only grew past each checkpoint. Rows newer than the
    newest checkpoint can still be removed without trace: take checkpoints regularly.
    """
    settings = settings_from(ctx)
    trusted = _trusted(settings, public_key)
    good, refused, notes = trusted_checkpoints(settings, list(checkpoint or []), trusted, kafka=kafka)
    result = _verify(settings, trusted, good)
    for note in [*notes, *result.notes]:
        typer.echo(f"note: {note}", err=True)
    for why in refused:
        typer.echo(f"checkpoint REFUSED: {why}", err=True)
    if result.broken is not None:
        typer.echo(_broken_text(result), err=True)
        raise typer.Exit(1)
    if trusted is None and result.rows > result.form1_rows:
        typer.echo(
            "ledger NOT VERIFIED: no trusted public key to check the appends' signatures under; set "
            "KCLOUD_LEDGER_PUBLIC_KEY_FILE or pass --public-key",
            err=True,
        )
        raise typer.Exit(1)
    if result.rows == 0:
        typer.echo("ledger intact: empty (no deployment events yet)")
    else:
        typer.echo(f"ledger intact: {result.rows} row(s), head seq {result.head_seq}, head hash {result.head_hash}")
        signer = f"under the trusted key {trusted.describe()}" if trusted else ""
        typer.echo(f"  {result.signed_appends} signed append(s) checked {signer}".rstrip())
        if result.form1_rows:
            typer.echo(
                f"  {result.form1_rows} row(s) of form 1 (written before migration 0008): chained, signed by the "
                "first append after it, checked against checkpoints; their device_id is not hashed"
            )
    if result.checkpoint is not None:
        typer.echo(f"  extends the newest known {result.checkpoint.describe()}; {len(good)} checkpoint(s) checked")
    else:
        typer.echo("  no checkpoint known: take one with `kcloud ledger checkpoint`")
    if refused:
        typer.echo(f"verify FAILED: {len(refused)} checkpoint(s) refused (see above)", err=True)
        raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the checkpoint JSON here.")] = None,
    kafka: KafkaOption = True,
) -> None:
    """Verify the ledger (against the checkpoints known), then sign its head (row count, head hash, time)
    with the service's Ed25519 key and publish it where the database owner cannot rewrite it: a new
    read-only file of the checkpoint store (KCLOUD_LEDGER_CHECKPOINT_DIR, default <state_dir>/checkpoints)
    and the Kafka topic kcloud.ledger-checkpoints.v1 (kept for ever).

    An auditor keeps every checkpoint (copies of the store's files, or its own consumer of the topic) and
    the trusted public key: `kcloud ledger verify --checkpoint FILE` then proves the ledger still begins
    with exactly the rows each names.
    """
    settings = settings_from(ctx)
    key_path = signing_key_path(settings)
    try:
        key, created = load_or_create_key(key_path)
    except LedgerKeyError as exc:
        fail(f"kcloud ledger: {exc}")
    if created:
        typer.echo(f"created signing key {key_path} (public key {public_key_text(key)}, also in {key_path}.pub)")
    trusted = _trusted(settings, None)
    if trusted is None or trusted.find(public_key_text(key)) is None:
        fail(
            f"kcloud ledger: the signing key {key_path} is not a trusted key "
            f"({trusted.describe() if trusted else 'none'})"
        )
    good, refused, notes = trusted_checkpoints(settings, [], trusted, kafka=kafka)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if refused:
        fail("kcloud ledger: refusing to sign while a checkpoint is refused: " + "; ".join(refused))
    result = _verify(settings, trusted, good)
    if result.broken is not None:
        fail(f"kcloud ledger: refusing to sign a broken ledger ({_broken_text(result)})")
    checkpoint = sign_checkpoint(key, result.rows, result.head_seq, result.head_hash)
    stored = write_to_store(checkpoint_dir(settings), checkpoint)
    if out is not None:
        out.write_text(checkpoint.to_json())
    typer.echo(
        f"checkpoint of {result.rows} row(s), head {result.head_hash}, signed; stored as {stored}"
        + (f" and written to {out}" if out is not None else "")
    )
    if kafka:
        try:
            publish_to_kafka(settings, checkpoint)
        except Exception as exc:  # kafka-python raises plain Exception subclasses
            fail(
                f"kcloud ledger: the checkpoint is stored, but not published to Kafka: {str(exc) or type(exc).__name__}"
            )
        typer.echo(f"published on {settings.topic_namespace}kcloud.ledger-checkpoints.v1")


@app.command("check-checkpoint")
def check_checkpoint_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A checkpoint written by `kcloud ledger checkpoint`.")],
    public_key: PublicKeyOption = None,
) -> None:
    """Check that a checkpoint is signed by the trusted key (never by the key named in the file), and that
    today's ledger begins with exactly the rows it names and verifies (as `kcloud ledger verify`)."""
    settings = settings_from(ctx)
    trusted = _trusted(settings, public_key)
    if trusted is None:
        fail("kcloud ledger: no trusted public key: set KCLOUD_LEDGER_PUBLIC_KEY_FILE or pass --public-key")
    try:
        checkpoint = read_checkpoint(file)
        checkpoint.check_signature(trusted)
    except CheckpointError as exc:
        fail(f"kcloud ledger: {exc}")
    result = _verify(settings, trusted, [checkpoint])
    if result.broken is not None:
        fail(f"kcloud ledger: the ledger does not hold: {_broken_text(result)}")
    typer.echo(
        f"checkpoint holds: signed {checkpoint.created_at} by the trusted key ({trusted.source}); the ledger still "
        f"begins with its {checkpoint.row_count} row(s) ending in {checkpoint.head_hash}"
    )
