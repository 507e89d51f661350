"""The one error type of infra/: what failed, and the service's own log tail when there is one."""

from __future__ import annotations

from kcloud.errors import ServiceError

__all__ = ["InfraError"]


class InfraError(ServiceError):
    """A service could not be started, checked or stopped. The message is meant for an operator."""
