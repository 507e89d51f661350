"""The one error type of infra/: what failed, and the service's own log tail when there is one."""

from __future__ import annotations

__all__ = ["InfraError"]


class InfraError(Exception):
    """A service could not be started, checked or stopped. The message is meant for an operator."""
