"""What the vendor gateway answers: the response bodies (pydantic models, so that `/openapi.json`
describes them exactly) and `GatewayError`, the one exception every refusal is raised as.

Every refusal has a stable `error` code (what a client branches on) and a `message` written for the
person reading the client's log: what happened, to which input, and what to do.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from kcloud.api_models import ErrorBody, RejectedSnapshot, SnapshotRef

__all__ = [
    "AcceptedSnapshot",
    "ErrorBody",
    "GatewayError",
    "Health",
    "PushResult",
    "RejectedSnapshot",
]


class AcceptedSnapshot(SnapshotRef):
    """A snapshot Kafka has acknowledged."""

    devices: int = Field(description="Device samples in the snapshot.")


class PushResult(BaseModel):
    """The answer to an accepted push: every accepted snapshot is on Kafka (acknowledged by all replicas)."""

    message: str
    accepted: list[AcceptedSnapshot]
    rejected: list[RejectedSnapshot] = Field(
        default_factory=list, description="Snapshots of the request that were refused, with the reason of each."
    )


class Health(BaseModel):
    """Whether this gateway can take pushes now."""

    status: str = Field(description="ok, or unavailable")
    database: str = Field(description="ok, or why the database does not answer (e.g. no answer within 2 s)")
    kafka: str = Field(description="ok, or why the last delivery to Kafka failed")
    unavailable: list[str] = Field(
        default_factory=list, description="The dependencies that do not answer: database, kafka."
    )


class GatewayError(Exception):
    """A request refused with `status`; becomes an `ErrorBody` response (with `headers`, e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        rejected: list[RejectedSnapshot] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.rejected = rejected or []

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.error, message=self.message, rejected=self.rejected)
