"""The ledger's Ed25519 keys: the writer's private key, the trusted public key, and what they sign.

The private key (`ledger_key_file`, default `<state_dir>/keys/ledger-ed25519.pem`) lives outside the
database, is created with mode 0600 on first use (its public key beside it as `<key>.pub`), and is
refused when its group or others may read it. It signs each ledger append (`append_message`: the hash of
the append's last row and how many rows it holds, which through the chain covers every row before) and
every checkpoint. Whoever checks trusts only public keys it was given (`ledger_public_key_file`, default
`<key>.pub`, or the public half of the private key when that is all there is; several lines while a key
is replaced: the old key's rows keep verifying), never one named by what it checks. May import only the
standard library and `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "LedgerKeyError",
    "LedgerSigner",
    "TrustedKeys",
    "append_message",
    "check_append",
    "load_or_create_key",
    "load_public_keys",
    "public_key_from_text",
    "public_key_text",
    "trusted_public_key",
]

_APPEND_FORMAT = b"kcloud-ledger-append/1"


class LedgerKeyError(Exception):
    """A key file that cannot be used, with what to do about it."""


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: how checkpoints, `--public-key` and `<key>.pub` spell it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 (raw 32 bytes) or PEM text; LedgerKeyError when it is neither."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise LedgerKeyError(f"a {type(key).__name__}, not an Ed25519 public key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(stripped, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise LedgerKeyError(f"not an Ed25519 public key (base64 of 32 bytes, or PEM): {exc}") from exc


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise LedgerKeyError(
            f"the ledger signing key {path} may be read by others (mode {mode:04o}); only its owner may read it: "
            f"run `chmod 600 {path}` (and consider the key exposed: make a new one and publish its public key)"
        )


def _load_private(path: Path) -> Ed25519PrivateKey:
    _check_private(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise LedgerKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    except OSError as exc:
        raise LedgerKeyError(f"cannot read the ledger signing key {path}: {exc.strerror}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key at `path`; a new one is written (mode 0600, public key at `<path>.pub`) when none exists.

    Returns (key, created). Concurrent first uses agree on one key (the file appears whole, once).
    LedgerKeyError when the file is readable by group or others, or is not an Ed25519 key.
    """
    if path.exists():
        return _load_private(path), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a key another process made meanwhile
    except FileExistsError:
        return _load_private(path), False
    finally:
        tmp.unlink()
    pub_tmp = path.with_name(f".{path.name}.pub.{secrets.token_hex(8)}.tmp")
    pub_tmp.write_text(public_key_text(key) + "\n")
    os.replace(pub_tmp, f"{path}.pub")
    return key, True


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a verifier trusts (more than one while a key is being replaced) and where they came from."""

    keys: tuple[Ed25519PublicKey, ...]
    source: str

    @classmethod
    def of(cls, key: Ed25519PublicKey | TrustedKeys, source: str = "given") -> TrustedKeys:
        return key if isinstance(key, TrustedKeys) else cls((key,), source)

    @property
    def texts(self) -> list[str]:
        return [public_key_text(k) for k in self.keys]

    def find(self, text: str) -> Ed25519PublicKey | None:
        """The trusted key spelled `text`, if it is one."""
        return next((k for k in self.keys if public_key_text(k) == text), None)

    def check_append(self, last_hash: str, rows: int, signature: str) -> bool:
        return any(check_append(k, last_hash, rows, signature) for k in self.keys)

    def describe(self) -> str:
        return f"{', '.join(self.texts)} ({self.source})"


def load_public_keys(path: Path) -> TrustedKeys:
    """The trusted public keys of a file: one base64 key per line (`#` starts a comment) or PEM blocks;
    LedgerKeyError naming the file otherwise."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LedgerKeyError(f"cannot read the trusted public key {path}: {exc.strerror}") from exc
    if "-----BEGIN" in text:
        items = re.findall(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", text, flags=re.DOTALL)
    else:
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not items:
        raise LedgerKeyError(f"{path} holds no public key")
    try:
        return TrustedKeys(tuple(public_key_from_text(item) for item in items), str(path))
    except LedgerKeyError as exc:
        raise LedgerKeyError(f"{path}: {exc}") from exc


def trusted_public_key(public_key_file: Path | None, key_file: Path) -> TrustedKeys | None:
    """The public keys to trust: those of `public_key_file` when set, else of `<key_file>.pub`, else the public
    half of `key_file`; None when there is none of them."""
    if public_key_file is not None:
        return load_public_keys(public_key_file)
    pub = Path(f"{key_file}.pub")
    if pub.exists():
        return load_public_keys(pub)
    if key_file.exists():
        return TrustedKeys((_load_private(key_file).public_key(),), f"{key_file} (its public half)")
    return None


def append_message(last_hash: str, rows: int) -> bytes:
    """What an append's signature signs: the hash of its last row and how many rows it appended."""
    return b"%s\n%s\n%d" % (_APPEND_FORMAT, last_hash.encode(), rows)


def check_append(key: Ed25519PublicKey, last_hash: str, rows: int, signature: str) -> bool:
    """Whether `signature` (base64) is `key`'s signature of an append of `rows` rows ending in `last_hash`."""
    try:
        key.verify(base64.b64decode(signature, validate=True), append_message(last_hash, rows))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True)
class LedgerSigner:
    """The writer's key, as `append_events` signs with it."""

    key: Ed25519PrivateKey

    @classmethod
    def from_file(cls, path: Path) -> LedgerSigner:
        """The signer of the key at `path` (created on first use); LedgerKeyError when it cannot be used."""
        return cls(load_or_create_key(path)[0])

    def sign_append(self, last_hash: str, rows: int) -> str:
        return base64.b64encode(self.key.sign(append_message(last_hash, rows))).decode()

    @property
    def public_key_text(self) -> str:
        return public_key_text(self.key)
