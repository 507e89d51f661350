"""Start and stop stream workers as separate processes (`kcloud streams worker`), as production runs
them: used by `kcloud demo`, the benchmarks and the integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from infra.errors import InfraError
from infra.process import log_tail, stop_pid
from kcloud.settings import ENV_PREFIX, Settings

__all__ = ["WorkerProcess", "settings_env"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see exactly `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[ENV_PREFIX + name.upper()] = str(value)
    return env


class WorkerProcess:
    """One `kcloud streams worker` child process with its own web port and log file."""

    def __init__(self, settings: Settings, log_path: Path, web_port: int | None = None) -> None:
        self.settings = settings.model_copy(update={"worker_web_port": web_port or settings.worker_web_port})
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and wait until its web server answers (the app is up and consuming)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kcloud.cli", "streams", "worker", "--loglevel", "info"],
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfraError(
                    f"stream worker exited with {self.proc.returncode} during start-up; "
                    f"its log ({self.log_path}) ends with:\n{log_tail(self.log_path)}"
                )
            try:
                self.counters()
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise InfraError(
            f"stream worker did not come up in {timeout:.0f}s; its log ({self.log_path}) "
            f"ends with:\n{log_tail(self.log_path)}"
        )

    def counters(self) -> dict[str, Any]:
        """The worker's ingest counters from its web server."""
        url = f"http://127.0.0.1:{self.settings.worker_web_port}/counters/"
        with urllib.request.urlopen(url, timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (clean shutdown, offsets committed), SIGKILL after `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid, timeout=timeout)
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
