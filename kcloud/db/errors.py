"""Errors of the database layer: each says what happened, to which object, and what to do next.

Every error here subclasses `DatabaseError`, so a caller (the CLI, a stream worker) can catch the layer's
failures in one place and print the message as-is: it is written for an operator.
"""

from __future__ import annotations

__all__ = [
    "DatabaseError",
    "DatabaseUnavailableError",
    "MigrationChecksumError",
    "MigrationError",
    "MigrationLockTimeoutError",
    "PartitionRangeError",
    "StorageModeError",
]


class DatabaseError(Exception):
    """Base of every error raised by `kcloud.db`; the message is meant for an operator."""


class DatabaseUnavailableError(DatabaseError):
    """The server could not be reached or refused the connection."""


class StorageModeError(DatabaseError):
    """The storage mode asked for (settings.timescale) cannot be had on this server or database."""


class MigrationError(DatabaseError):
    """A migration file is malformed, or applying it failed (it was rolled back)."""


class MigrationChecksumError(MigrationError):
    """An already-applied migration file was edited: applied migrations are immutable."""


class MigrationLockTimeoutError(MigrationError):
    """Another process held the migration lock for longer than we were willing to wait."""


class PartitionRangeError(DatabaseError):
    """`ensure_partitions` was asked for an implausibly long range of days (a bad timestamp, usually)."""
