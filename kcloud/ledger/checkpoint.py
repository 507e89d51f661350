"""Signed checkpoints of the ledger: a small JSON document a program manager keeps, naming the ledger head.

A checkpoint states the head hash, the row count and seq, and the time, signed with the service's
Ed25519 key (`ledger_key_file`, created with mode 0600 on first use). Anyone holding a checkpoint can later
check that the signature is the service's and that today's ledger still begins with exactly those rows:
nothing before the checkpoint was changed, removed or reordered.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["Checkpoint", "CheckpointError", "load_or_create_key", "read_checkpoint", "sign_checkpoint"]

_FORMAT = "kcloud-ledger-checkpoint/1"
_SIGNED_FIELDS = ("format", "ledger", "row_count", "head_seq", "head_hash", "created_at")


class CheckpointError(Exception):
    """A checkpoint file that cannot be read, or whose signature does not hold."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the ledger head."""

    ledger: str
    row_count: int
    head_seq: int | None
    head_hash: str | None
    created_at: str
    public_key: str
    signature: str

    def signed_text(self) -> bytes:
        body = {
            "format": _FORMAT,
            "ledger": self.ledger,
            "row_count": self.row_count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> str:
        doc: dict[str, Any] = json.loads(self.signed_text())
        doc["public_key"] = self.public_key
        doc["signature"] = self.signature
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def check_signature(self, trusted_public_key: str | None = None) -> None:
        """Raise CheckpointError unless the signature holds (for `trusted_public_key` when given)."""
        key_text = trusted_public_key or self.public_key
        if trusted_public_key is not None and trusted_public_key != self.public_key:
            raise CheckpointError("the checkpoint was signed by another key than the trusted one")
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_text, validate=True))
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_text())
        except (InvalidSignature, ValueError) as exc:
            raise CheckpointError("the checkpoint's signature does not match its content") from exc


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key at `path`; a new one is written (mode 0600) when none exists. Returns (key, created)."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise CheckpointError(f"{path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
        return key, False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key, True


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_checkpoint(
    key: Ed25519PrivateKey, row_count: int, head_seq: int | None, head_hash: str | None, at: datetime | None = None
) -> Checkpoint:
    """A checkpoint of the given head, signed with `key`."""
    created = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    unsigned = Checkpoint("deployment_events", row_count, head_seq, head_hash, created, public_key_text(key), "")
    signature = base64.b64encode(key.sign(unsigned.signed_text())).decode()
    return Checkpoint(unsigned.ledger, row_count, head_seq, head_hash, created, unsigned.public_key, signature)


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse a checkpoint file; CheckpointError names what is wrong with it."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a {_FORMAT} document")
    missing = [f for f in (*_SIGNED_FIELDS, "public_key", "signature") if f not in doc]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return Checkpoint(
        str(doc["ledger"]),
        int(doc["row_count"]),
        None if doc["head_seq"] is None else int(doc["head_seq"]),
        None if doc["head_hash"] is None else str(doc["head_hash"]),
        str(doc["created_at"]),
        str(doc["public_key"]),
        str(doc["signature"]),
    )
