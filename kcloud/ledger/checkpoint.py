"""Signed checkpoints of the ledger: a signed tree head in the sense of RFC 9162 (Certificate Transparency).

A checkpoint states the row count and the hash of the row at that count (the head), its seq and the
time, signed with the service's Ed25519 key (`kcloud.ledger.keys`). Consistency with a later ledger is
simple because the ledger is one hash chain: the ledger must begin with exactly the checkpointed rows,
i.e. its row number `row_count` must still have hash `head_hash`; whatever was changed, removed or
reordered before it, or removed after, shows. A checkpoint is accepted only under a trusted public key
given to whoever checks; the public key written into the file only says which key signed it.

`kcloud.ledger.publish` keeps checkpoints where the database owner cannot rewrite them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kcloud.ledger.keys import TrustedKeys, public_key_text

__all__ = ["Checkpoint", "CheckpointError", "parse_checkpoint", "read_checkpoint", "sign_checkpoint"]

_FORMAT = "kcloud-ledger-checkpoint/1"
_SIGNED_FIELDS = ("format", "ledger", "row_count", "head_seq", "head_hash", "created_at")


class CheckpointError(Exception):
    """A checkpoint that cannot be read, or whose signature does not hold under the trusted key."""


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

    def check_signature(self, trusted: Ed25519PublicKey | TrustedKeys) -> None:
        """Raise CheckpointError unless the checkpoint is signed by a `trusted` key (the key in the file is not
        trusted: it only says which one signed)."""
        keys = TrustedKeys.of(trusted)
        key = keys.find(self.public_key)
        if key is None:
            raise CheckpointError(
                f"the checkpoint was signed by another key ({self.public_key}) than the trusted one "
                f"({', '.join(keys.texts)}): refused"
            )
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_text())
        except (InvalidSignature, ValueError, binascii.Error) as exc:
            raise CheckpointError("the checkpoint's signature does not match its content: refused") from exc

    def describe(self) -> str:
        return f"checkpoint of {self.created_at} ({self.row_count} row(s) ending in {self.head_hash})"


def sign_checkpoint(
    key: Ed25519PrivateKey, row_count: int, head_seq: int | None, head_hash: str | None, at: datetime | None = None
) -> Checkpoint:
    """A checkpoint of the given head, signed with `key`."""
    created = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    unsigned = Checkpoint("deployment_events", row_count, head_seq, head_hash, created, public_key_text(key), "")
    signature = base64.b64encode(key.sign(unsigned.signed_text())).decode()
    return Checkpoint(unsigned.ledger, row_count, head_seq, head_hash, created, unsigned.public_key, signature)


def parse_checkpoint(text: str | bytes, where: str) -> Checkpoint:
    """Parse a checkpoint document; CheckpointError names `where` and what is wrong with it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{where} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{where} is not UTF-8 text") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise CheckpointError(f"{where} is not a {_FORMAT} document")
    missing = [f for f in (*_SIGNED_FIELDS, "public_key", "signature") if f not in doc]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(missing)}")
    try:
        return Checkpoint(
            str(doc["ledger"]),
            int(doc["row_count"]),
            None if doc["head_seq"] is None else int(doc["head_seq"]),
            None if doc["head_hash"] is None else str(doc["head_hash"]),
            str(doc["created_at"]),
            str(doc["public_key"]),
            str(doc["signature"]),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: a field has the wrong type: {exc}") from exc


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse a checkpoint file; CheckpointError names what is wrong with it."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_checkpoint(text, str(path))
