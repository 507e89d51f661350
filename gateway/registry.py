"""The database side of vendors and their push tokens (`vendors`, `vendor_tokens`): what the
`kcloud vendor` commands change and what the gateway reads to authenticate a push.

Every function takes an open connection and commits its own change (`with conn.transaction()`);
errors a person can fix are `RegistryError`s with a message naming the vendor or token at fault.

Example:
    >>> with connect(settings.effective_database_url) as conn:  # doctest: +SKIP
    ...     issued = create_token(conn, "furiosa", role="vendor", label="rngd fleet")
    ...     reader = create_token(conn, None, role="program-manager", expires_at=None)
    >>> issued.text  # shown once, never stored
    'kc_3f9a0c1b2d4e_...'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from gateway.tokens import CROSS_VENDOR_ROLES, ROLES, IssuedToken, issue_token
from kcloud.db.connect import Connection

__all__ = [
    "RegistryError",
    "StoredToken",
    "TokenRow",
    "VendorRow",
    "add_vendor",
    "create_token",
    "find_token",
    "list_tokens",
    "list_vendors",
    "revoke_token",
]

_VENDOR_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class RegistryError(Exception):
    """A vendor or token request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class VendorRow:
    """A row of `vendors`."""

    vendor_id: str
    display_name: str
    domestic: bool


@dataclass(frozen=True)
class TokenRow:
    """A row of `vendor_tokens` without its secret material: what `kcloud vendor token list` shows."""

    token_id: str
    vendor_id: str | None
    role: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class StoredToken:
    """What the gateway needs to check a presented token."""

    token_id: str
    #: None for a cross-vendor role (program-manager)
    vendor_id: str | None
    role: str
    salt: bytes
    hash: bytes
    revoked_at: datetime | None
    expires_at: datetime | None = None


def add_vendor(conn: Connection, name: str, *, domestic: bool, display_name: str | None = None) -> str:
    """Register a vendor (or correct its display name and domestic flag); returns what was done."""
    if not _VENDOR_RE.match(name):
        raise RegistryError(
            f"vendor name {name!r} is not a valid slug: use lower-case letters, digits, '-' and '_' "
            "(it is the `vendor` field of every device sample)"
        )
    display = display_name or name
    with conn.transaction():
        row = conn.execute(
            "SELECT display_name, domestic FROM vendors WHERE vendor_id = %s FOR UPDATE", (name,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO vendors (vendor_id, display_name, domestic) VALUES (%s, %s, %s)",
                (name, display, domestic),
            )
            return f"vendor {name} added ({'domestic' if domestic else 'foreign'})"
        new_display = display_name or row[0]
        if (row[0], row[1]) == (new_display, domestic):
            return f"vendor {name} is already registered ({'domestic' if domestic else 'foreign'}); nothing changed"
        conn.execute(
            "UPDATE vendors SET display_name = %s, domestic = %s WHERE vendor_id = %s", (new_display, domestic, name)
        )
        return f"vendor {name} updated ({'domestic' if domestic else 'foreign'}, shown as {new_display!r})"


def list_vendors(conn: Connection) -> list[VendorRow]:
    """Every registered vendor, by name."""
    rows = conn.execute("SELECT vendor_id, display_name, domestic FROM vendors ORDER BY vendor_id").fetchall()
    return [VendorRow(str(r[0]), str(r[1]), bool(r[2])) for r in rows]


def create_token(
    conn: Connection,
    vendor: str | None,
    *,
    role: str = "vendor",
    label: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Issue a token; only its salt and hash are stored. Returns the token (text shown once).

    A `vendor` token pushes for `vendor`, which must be registered; a cross-vendor role
    (`CROSS_VENDOR_ROLES`: program-manager) belongs to no vendor and is refused one. `expires_at`
    (None: never) must be in the future.
    """
    if role not in ROLES:
        raise RegistryError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role in CROSS_VENDOR_ROLES and vendor is not None:
        raise RegistryError(
            f"a {role} token reads every vendor's data and belongs to no vendor; leave out the vendor ({vendor!r})"
        )
    if role not in CROSS_VENDOR_ROLES and vendor is None:
        raise RegistryError(f"a {role} token speaks for one vendor: name it (--vendor NAME)")
    with conn.transaction():
        known = vendor is None or conn.execute("SELECT 1 FROM vendors WHERE vendor_id = %s", (vendor,)).fetchone()
        if not known:
            raise RegistryError(
                f"vendor {vendor!r} is not registered; add it first with "
                f"`kcloud vendor add {vendor} --domestic` (or --foreign)"
            )
        if expires_at is not None:
            row = conn.execute("SELECT %s::timestamptz > now()", (expires_at,)).fetchone()
            if not row or not row[0]:
                raise RegistryError(f"the expiry {expires_at.isoformat()} is not in the future")
        issued = issue_token()
        conn.execute(
            "INSERT INTO vendor_tokens (token_id, vendor_id, role, salt, hash, label, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (issued.token_id, vendor, role, issued.salt, issued.hash, label, expires_at),
        )
    return issued


def _bare_id(token_or_id: str) -> str:
    text = token_or_id.strip()
    if text.startswith("kc_"):
        text = text[3:].split("_", 1)[0]
    return text


def revoke_token(conn: Connection, token_or_id: str) -> TokenRow:
    """Revoke a token (by id, or by its full text); returns its row. Revoking twice changes nothing."""
    token_id = _bare_id(token_or_id)
    with conn.transaction():
        conn.execute(
            "UPDATE vendor_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL", (token_id,)
        )
        found = _token_rows(conn, "WHERE token_id = %s", (token_id,))
    if not found:
        raise RegistryError(f"no token with id {token_id!r}; `kcloud vendor token list` shows the ids")
    return found[0]


def list_tokens(conn: Connection, vendor: str | None = None, *, include_revoked: bool = True) -> list[TokenRow]:
    """Tokens (no secret material), oldest first; optionally of one vendor, optionally live ones only
    (neither revoked nor expired)."""
    clauses, params = [], []
    if vendor is not None:
        clauses.append("vendor_id = %s")
        params.append(vendor)
    if not include_revoked:
        clauses.append("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return _token_rows(conn, where, tuple(params))


def _token_rows(conn: Connection, where: str, params: tuple[object, ...]) -> list[TokenRow]:
    rows = conn.execute(
        f"SELECT token_id, vendor_id, role, label, created_at, revoked_at, expires_at FROM vendor_tokens {where} "
        "ORDER BY created_at, token_id",
        params,
    ).fetchall()
    return [TokenRow(str(r[0]), r[1], str(r[2]), r[3], r[4], r[5], r[6]) for r in rows]


def find_token(conn: Connection, token_id: str) -> StoredToken | None:
    """The stored row of a token id, or None when there is none."""
    row = conn.execute(
        "SELECT token_id, vendor_id, role, salt, hash, revoked_at, expires_at FROM vendor_tokens WHERE token_id = %s",
        (token_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredToken(str(row[0]), row[1], str(row[2]), bytes(row[3]), bytes(row[4]), row[5], row[6])
