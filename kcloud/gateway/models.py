"""What the vendor gateway answers: the response bodies (pydantic models, so that `/openapi.json`
describes them exactly) and `GatewayError`, the one exception every refusal is raised as.

Every refusal has a stable `error` code (what a client branches on) and a `message` written for the
person reading the client's log: what happened, to which input, and what to do.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "AcceptedSnapshot",
    "ErrorBody",
    "GatewayError",
    "Health",
    "PushResult",
    "RejectedSnapshot",
]


class _SnapshotRef(BaseModel):
    index: int = Field(description="Position of the snapshot in the request, from 0.")
    line: int | None = Field(None, description="Line of the request body it was on (NDJSON), from 1.")
    node_id: str | None = Field(None, description="The snapshot's node.node_id, when it could be read.")
    seq: int | None = Field(None, description="The snapshot's seq, when it could be read.")


class AcceptedSnapshot(_SnapshotRef):
    """A snapshot Kafka has acknowledged."""

    devices: int = Field(description="Device samples in the snapshot.")


class RejectedSnapshot(_SnapshotRef):
    """A snapshot that was not accepted, and why."""

    reason: str = Field(
        description="Stable code: invalid_json, unknown_schema, invalid_field, timestamp_out_of_range, "
        "vendor_mismatch, source_mismatch, device_owned_by_other_vendor, node_owned_by_other_vendor, "
        "node_at_other_site."
    )
    detail: str = Field(description="What is wrong and where (line and column, or the field path).")


class PushResult(BaseModel):
    """The answer to an accepted push: every accepted snapshot is on Kafka (acknowledged by all replicas)."""

    message: str
    accepted: list[AcceptedSnapshot]
    rejected: list[RejectedSnapshot] = Field(
        default_factory=list, description="Snapshots of the request that were refused, with the reason of each."
    )


class ErrorBody(BaseModel):
    """The answer to a refused request."""

    error: str = Field(description="Stable code of the refusal.")
    message: str = Field(description="What happened and what to do.")
    rejected: list[RejectedSnapshot] = Field(default_factory=list)


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
