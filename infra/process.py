"""Process plumbing shared by the local services: pid files, port probes, log tails and waiting.

Nothing here knows about Kafka or PostgreSQL; it only answers "is this pid ours and alive", "is this
port free" and "what did the log say last".
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kcloud.supervisor import log_tail

__all__ = [
    "alive_pid",
    "log_tail",
    "port_open",
    "spawn",
    "stop_pid",
    "wait_until",
]


# Popen objects of the services we started, kept so they are reaped (not garbage-collected while running)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(cmd: list[str], log_path: Path) -> int:
    """Start `cmd` in its own session with stdout/stderr appended to `log_path`; returns its pid."""
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if that process is alive and its command line contains `marker`.

    A pid file naming a dead process, or a process that is not ours (pid reused), is stale: it is
    removed and None is returned.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        if pid_file.exists():
            pid_file.unlink()
        return None
    if marker in _cmdline(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll `check` until it returns True or `timeout` seconds pass. `abort` may return a reason to stop
    early (e.g. the process died); then `RuntimeError(reason)` is raised. The last exception `check`
    raised, if any, is kept in `wait_until.last_error` for the caller's message."""
    deadline = time.monotonic() + timeout
    wait_until.last_error = None  # type: ignore[attr-defined]
    while True:
        try:
            if check():
                return True
        except Exception as exc:
            wait_until.last_error = exc  # type: ignore[attr-defined]
        if abort is not None:
            reason = abort()
            if reason:
                raise RuntimeError(reason)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL it if still alive after `timeout` seconds."""

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie child of ours counts as gone
        return "zombie" in _status(pid)

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not wait_until(gone, timeout, interval=0.2):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_until(gone, 10, interval=0.2)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
    else:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _status(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.lower()
    except OSError:
        return "zombie"
    return ""
