"""Who is calling: the FastAPI dependencies that authenticate a vendor token and check its role.

`authenticate` reads `Authorization: Bearer kc_<token_id>_<secret>`, finds the token by its id,
checks the secret in constant time, refuses unknown, wrong, revoked and expired tokens with 401, and
takes one request from the token's rate-limit bucket (429 with `Retry-After` when it is empty). It
returns the `Principal`: token id, vendor (none for a cross-vendor role) and role.

Failed authentications (malformed tokens, unknown ids, wrong secrets) are limited per client address
(`gateway_auth_fail_burst`, then one per second): past the limit a failing attempt is answered 429
instead of 401. The limit is consulted only once an attempt has failed, so a valid token is never
refused because someone else behind the same address (one NAT, one proxy) keeps failing. The address is
the connecting peer's unless it is a configured proxy (`gateway_trusted_proxies`, applied by uvicorn).

`require_role(...)` is what an endpoint declares to be reserved for a role:

    @router.get("/v1/reports/evidence")
    async def evidence(who: Annotated[Principal, Depends(require_role("program-manager"))]) -> ...:
        ...
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from gateway.audit import audit_of
from gateway.context import context_of
from gateway.models import ErrorBody, GatewayError
from gateway.tokens import MalformedToken, parse_token, secret_matches

__all__ = ["AUTH_RESPONSES", "Principal", "authenticate", "bearer", "require_role"]

#: the security scheme of the API (shown in /openapi.json); errors are ours, not FastAPI's
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="VendorToken",
    description="A token from `kcloud vendor token create`: `Authorization: Bearer kc_<token_id>_<secret>`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}

#: the answers every authenticated endpoint can give; pass them in `responses=` of the route
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "No token, a malformed, unknown, revoked or expired token, or a wrong secret.",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "required": True, "schema": {"type": "string"}}},
    },
    403: {"model": ErrorBody, "description": "The token's role may not use this endpoint."},
    429: {
        "model": ErrorBody,
        "description": "The token sends faster than its rate limit, or this attempt failed to authenticate and "
        "its address has failed too often.",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": ErrorBody,
        "description": "Kafka or the database does not answer; nothing was accepted.",
        "headers": _RETRY_AFTER,
    },
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller; `vendor_id` is None for a cross-vendor role (program-manager)."""

    token_id: str
    vendor_id: str | None
    role: str

    @property
    def vendor(self) -> str:
        """The vendor the token speaks for; 403 for a token that belongs to no vendor."""
        if self.vendor_id is None:
            raise GatewayError(
                403,
                "forbidden_role",
                f"token {self.token_id} has role {self.role!r} and speaks for no vendor; use a vendor token",
            )
        return self.vendor_id


def _unauthorized(error: str, message: str) -> GatewayError:
    return GatewayError(401, error, message, headers=dict(_CHALLENGE))


def _failed(request: Request, refusal: GatewayError) -> GatewayError:
    """Count a failed authentication against the client's address: the refusal itself, or a 429 once the
    address has failed more often than its limit allows."""
    ctx = context_of(request)
    client = request.client.host if request.client else "unknown"
    wait = ctx.auth_failures.acquire(client)
    if wait <= 0:
        return refusal
    seconds = max(1, math.ceil(wait))
    return GatewayError(
        429,
        "too_many_failed_authentications",
        f"too many failed authentications from {client} ({refusal.error}: {refusal.message}); retry after {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller's token, checked and rate-limited (401, 429, or 503 when the database is away)."""
    audit = audit_of(request)
    ctx = context_of(request)
    if credentials is None:
        raise _unauthorized(
            "missing_token",
            "no token: send the header `Authorization: Bearer kc_<token_id>_<secret>` with a token from "
            "`kcloud vendor token create`",
        )
    try:
        presented = parse_token(credentials.credentials)
    except MalformedToken as exc:
        raise _failed(request, _unauthorized("malformed_token", f"the bearer token is malformed: {exc}")) from exc
    audit.token_id = presented.token_id
    stored = await run_in_threadpool(ctx.find_token, presented.token_id)
    ok = secret_matches(presented.secret, stored.salt if stored else None, stored.hash if stored else None)
    if stored is None or not ok:
        raise _failed(
            request,
            _unauthorized(
                "unknown_token",
                f"token {presented.token_id} is not known or its secret is wrong; ask the operator for a token",
            ),
        )
    if stored.revoked_at is not None:
        raise _unauthorized(
            "revoked_token",
            f"token {presented.token_id} was revoked at {stored.revoked_at.isoformat()}; "
            "ask the operator for a new one",
        )
    if stored.expires_at is not None and stored.expires_at <= datetime.now(UTC):
        raise _unauthorized(
            "expired_token",
            f"token {presented.token_id} expired at {stored.expires_at.astimezone(UTC).isoformat()}; "
            "ask the operator for a new one",
        )
    audit.vendor_id = stored.vendor_id
    assert ctx.limiter is not None
    wait = ctx.limiter.acquire(stored.token_id)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        limits = f"{ctx.limiter.rate_per_s:g} requests/s, bursts of {ctx.limiter.burst}"
        raise GatewayError(
            429,
            "rate_limited",
            f"token {stored.token_id} sends faster than its limit ({limits}); retry after {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    return Principal(stored.token_id, stored.vendor_id, stored.role)


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and refuses (403) a token of any other role."""
    if not roles:
        raise ValueError("require_role needs at least one role")

    async def has_role(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            raise GatewayError(
                403,
                "forbidden_role",
                f"token {principal.token_id} has role {principal.role!r}; this endpoint needs "
                f"{' or '.join(repr(r) for r in roles)}",
            )
        return principal

    return has_role
