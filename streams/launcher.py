"""Start and stop stream workers as separate processes (`kcloud streams worker`), as production runs
them: used by `kcloud demo`, the benchmarks and the integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from kcloud.settings import ENV_PREFIX, Settings
from kcloud.supervisor import Child, ChildSpec

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
    """One `kcloud streams worker` child process with its own web port and log file (a supervised `Child`)."""

    def __init__(self, settings: Settings, log_path: Path, web_port: int | None = None) -> None:
        self.settings = settings.model_copy(update={"worker_web_port": web_port or settings.worker_web_port})
        self.log_path = log_path
        self.child = Child(self._spec(60.0))

    def _spec(self, ready_timeout_s: float) -> ChildSpec:
        return ChildSpec(
            name="stream worker",
            argv=[sys.executable, "-m", "console.main", "streams", "worker", "--loglevel", "info"],
            env=settings_env(self.settings),
            log_path=self.log_path,
            ready=self._answers,
            ready_timeout_s=ready_timeout_s,
        )

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.child.proc

    def _answers(self) -> bool:
        self.counters()
        return True

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and wait until its web server answers (the app is up and consuming)."""
        self.child.spec = self._spec(timeout)
        self.child.start()
        return self

    def counters(self) -> dict[str, Any]:
        """The worker's ingest counters from its web server."""
        url = f"http://127.0.0.1:{self.settings.worker_web_port}/counters/"
        with urllib.request.urlopen(url, timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (clean shutdown, offsets committed), SIGKILL after `timeout`."""
        self.child.stop(grace_s=timeout)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
