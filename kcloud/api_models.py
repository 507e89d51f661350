"""The answer shapes every HTTP endpoint of the service shares (the vendor gateway's and the reports'):
`ErrorBody`, the body of every refusal, with a stable `error` code (what a client branches on) and a
`message` for the person reading the client's log; and the references to the snapshots of a request.
Pydantic models, so that `/openapi.json` describes them exactly. Imports nothing of the project.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "RejectedSnapshot", "SnapshotRef"]


class SnapshotRef(BaseModel):
    index: int = Field(description="Position of the snapshot in the request, from 0.")
    line: int | None = Field(None, description="Line of the request body it was on (NDJSON), from 1.")
    node_id: str | None = Field(None, description="The snapshot's node.node_id, when it could be read.")
    seq: int | None = Field(None, description="The snapshot's seq, when it could be read.")


class RejectedSnapshot(SnapshotRef):
    """A snapshot that was not accepted, and why."""

    reason: str = Field(
        description="Stable code: invalid_json, unknown_schema, invalid_field, timestamp_out_of_range, "
        "vendor_mismatch, source_mismatch, device_owned_by_other_vendor, node_owned_by_other_vendor, "
        "node_at_other_site."
    )
    detail: str = Field(description="What is wrong and where (line and column, or the field path).")


class ErrorBody(BaseModel):
    """The answer to a refused request."""

    error: str = Field(description="Stable code of the refusal.")
    message: str = Field(description="What happened and what to do.")
    rejected: list[RejectedSnapshot] = Field(default_factory=list)
