"""The error of a service that could not be started, checked or stopped (a child process of the
supervisor, a local Kafka or PostgreSQL of `infra/`): one message meant for an operator, with the
service's own log tail where there is one. Imports nothing of the project.
"""

from __future__ import annotations

__all__ = ["ServiceError"]


class ServiceError(Exception):
    """A service could not be started, checked or stopped. The message is meant for an operator."""
