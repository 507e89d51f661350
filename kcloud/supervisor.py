"""A small process supervisor for `kcloud demo`: child processes with log files, readiness checks,
restarts with a limit, and a clean stop (SIGTERM, then SIGKILL after a grace period).

Each child runs in its own session so that Ctrl-C reaches only the supervisor, which then stops the
children in the reverse order of their start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kcloud.errors import ServiceError

__all__ = [
    "Child",
    "ChildSpec",
    "log_tail",
]


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child: its command, environment, log file and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    ready: Callable[[], bool] | None = None
    ready_timeout_s: float = 60.0
    max_restarts: int = 3


@dataclass
class Child:
    """A running (or stopped) child process."""

    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> Child:
        """Start the child and wait until it is ready; ServiceError with its log tail when it is not."""
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.spec.argv),
                env=dict(self.spec.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        if self.spec.ready is None:
            return self
        deadline = time.monotonic() + self.spec.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.spec.name} exited with {self.proc.returncode} while starting; its log "
                    f"({self.spec.log_path}) ends with:\n{log_tail(self.spec.log_path)}"
                )
            try:
                if self.spec.ready():
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise ServiceError(
            f"{self.spec.name} was not ready within {self.spec.ready_timeout_s:.0f}s; its log "
            f"({self.spec.log_path}) ends with:\n{log_tail(self.spec.log_path)}"
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def check(self) -> str | None:
        """Restart the child when it died; returns a line for the operator when something happened.

        Raises ServiceError once the child has died more than `max_restarts` times.
        """
        if self.proc is None or self.alive:
            return None
        code = self.proc.returncode
        if self.restarts >= self.spec.max_restarts:
            raise ServiceError(
                f"{self.spec.name} exited with {code} and was restarted {self.restarts} time(s) already; "
                f"giving up. Its log ({self.spec.log_path}) ends with:\n{log_tail(self.spec.log_path)}"
            )
        self.restarts += 1
        self.start()
        return f"{self.spec.name} exited with {code}; restarted ({self.restarts}/{self.spec.max_restarts})"

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the child's process group, then SIGKILL what is left after `grace_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or f"(log {path} is empty)"
