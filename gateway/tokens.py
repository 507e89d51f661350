"""Vendor push tokens: their text form, how a secret is hashed, and how a presented token is checked.

A token reads `kc_<token_id>_<secret>`: the id (12 hex digits) finds the row of `vendor_tokens`, the
secret (43 URL-safe characters, 256 random bits) proves possession. Only a random salt and
SHA-256(salt || secret) are stored, never the secret. A slow password hash buys nothing for a 256-bit
random secret and would cost every push a few milliseconds; the comparison is constant-time
(`hmac.compare_digest`). A token may expire (`parse_expiry` reads the `--expires` of
`kcloud vendor token create`). Pure functions only: the database side is `gateway.registry`.

Example:
    >>> issued = issue_token()
    >>> parsed = parse_token(issued.text)
    >>> parsed.token_id == issued.token_id and secret_matches(parsed.secret, issued.salt, issued.hash)
    True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "CROSS_VENDOR_ROLES",
    "DEFAULT_EXPIRY",
    "ROLES",
    "TOKEN_PREFIX",
    "BadExpiry",
    "IssuedToken",
    "MalformedToken",
    "PresentedToken",
    "hash_secret",
    "issue_token",
    "parse_expiry",
    "parse_token",
    "secret_matches",
]

TOKEN_PREFIX: Final = "kc_"
#: what a token may do: `vendor` pushes its vendor's telemetry; `program-manager` reads evidence reports
ROLES: Final = ("vendor", "program-manager")
#: roles that act across vendors: their tokens belong to no vendor (every other role's token has one)
CROSS_VENDOR_ROLES: Final = frozenset({"program-manager"})
#: the lifetime of a token when `kcloud vendor token create` is not given `--expires`
DEFAULT_EXPIRY: Final = "365d"
_DURATION_RE: Final = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_ID_RE: Final = re.compile(r"^[0-9a-f]{12}$")
_SECRET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_DUMMY_SALT: Final = b"\x00" * 16


class BadExpiry(ValueError):  # noqa: N818 -- reads as what it is: a bad expiry
    """An `--expires` value that is neither a duration, an ISO date or time, nor `never`."""


class MalformedToken(ValueError):  # noqa: N818 -- reads as what it is: a malformed token
    """The presented text is not of the form `kc_<token_id>_<secret>`."""


@dataclass(frozen=True)
class PresentedToken:
    """A token as a client presented it: the id to look up and the secret to check."""

    token_id: str
    secret: str


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `text` is shown once to the person who asked for it; `salt` and `hash` are stored."""

    token_id: str
    text: str
    salt: bytes
    hash: bytes


def hash_secret(secret: str, salt: bytes) -> bytes:
    """SHA-256 of salt and secret: the value stored in `vendor_tokens.hash`."""
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


def issue_token() -> IssuedToken:
    """A fresh token id and secret, with the salt and hash to store."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return IssuedToken(token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", salt, hash_secret(secret, salt))


def parse_token(text: str) -> PresentedToken:
    """Split `kc_<token_id>_<secret>`; raises `MalformedToken` saying what is wrong with it.

    >>> parse_token("kc_0123456789ab_" + "s" * 43).token_id
    '0123456789ab'
    """
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX):
        raise MalformedToken(f"a token starts with {TOKEN_PREFIX!r}")
    token_id, sep, secret = text[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not _ID_RE.match(token_id):
        raise MalformedToken("a token reads kc_<12 hex digits>_<secret>")
    if not _SECRET_RE.match(secret):
        raise MalformedToken(f"the secret of token {token_id} is not of the form `kcloud vendor token create` prints")
    return PresentedToken(token_id, secret)


def secret_matches(secret: str, salt: bytes | None, stored_hash: bytes | None) -> bool:
    """Constant-time check of a presented secret; with no stored row (`None`), a dummy hash is still
    computed so that unknown ids take as long to refuse as wrong secrets."""
    computed = hash_secret(secret, salt if salt is not None else _DUMMY_SALT)
    if stored_hash is None:
        hmac.compare_digest(computed, computed)
        return False
    return hmac.compare_digest(computed, stored_hash)


def parse_expiry(text: str, now: datetime | None = None) -> datetime | None:
    """When a token given `--expires text` at `now` expires (UTC), or None for `never`.

    `text` is a duration from now (`90d`, `12h`, `30m`, `2w`, `45s`), an ISO date (midnight UTC that day)
    or date and time (UTC unless it names its offset), or `never`. Raises `BadExpiry` saying what is
    accepted, also for a time that is not in the future.

    >>> parse_expiry("2d", datetime(2027, 1, 1, tzinfo=UTC)).isoformat()
    '2027-01-03T00:00:00+00:00'
    >>> parse_expiry("never") is None
    True
    """
    at = now or datetime.now(UTC)
    value = text.strip().lower()
    if value in ("never", "none"):
        return None
    duration = _DURATION_RE.match(value)
    if duration:
        seconds = int(duration.group(1)) * _UNIT_S[duration.group(2)]
        if seconds <= 0:
            raise BadExpiry(f"--expires {text!r}: a token's lifetime must be longer than zero")
        return at + timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadExpiry(
            f"--expires {text!r} is not a duration (e.g. 90d, 12h, 30m, 2w), an ISO date or time "
            "(e.g. 2027-06-30, 2027-06-30T18:00:00+09:00) or `never`"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= at:
        raise BadExpiry(f"--expires {text!r} is not in the future (now is {at.isoformat(timespec='seconds')})")
    return when.astimezone(UTC)
