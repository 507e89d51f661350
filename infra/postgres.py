"""The local PostgreSQL cluster: Debian's `postgresql` server binaries, run as the project's own cluster
in `<state_dir>/postgres/` on 127.0.0.1 and its own port, unless `KCLOUD_DATABASE_URL` names an existing
server, which is then used as-is (never started or stopped here).

`initdb` and `postgres` refuse to run as root: when we are root, the cluster belongs to Debian's
`postgres` system user and every server command runs through `runuser -u postgres`.

TimescaleDB: when its library is installed for the server's major version and the settings do not say
`timescale=off`, the cluster preloads it (`shared_preload_libraries`); with `timescale=off` it does not, so a
plain cluster stays plain. The configuration is rewritten by every `up`, and a running cluster whose preload
differs from what it should be (started before TimescaleDB was installed, or under the other setting) is
restarted with the right one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from infra.errors import InfraError
from infra.process import log_tail, port_open

__all__ = ["PostgresService", "PostgresStatus", "find_bindir"]

from kcloud.settings import Settings

_SERVER_USER = "postgres"


def find_bindir() -> Path:
    """Directory of `initdb`/`pg_ctl`: the newest `/usr/lib/postgresql/<major>/bin`, else PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise InfraError(
        "postgres: no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "install them with `apt-get install -y postgresql` (make setup does), "
        "or point KCLOUD_DATABASE_URL at an existing server"
    )


@dataclass(frozen=True)
class PostgresStatus:
    """What `infra status` says about the database."""

    healthy: bool
    detail: str
    external: bool = False


class PostgresService:
    """Start, check and stop the project's own PostgreSQL cluster (or just check an external one)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "postgres"
        self.data = self.home / "data"
        self.sockets = self.home / "run"
        self.log = self.home / "postgres.log"
        self.external = settings.database_url is not None
        self.url = settings.effective_database_url

    # -- helpers ----------------------------------------------------------------------------------
    def _as_server_user(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        return ["runuser", "-u", _SERVER_USER, "--", *cmd]

    def _run(self, cmd: list[str], what: str) -> str:
        proc = subprocess.run(
            self._as_server_user(cmd), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if proc.returncode != 0:
            raise InfraError(
                f"postgres: {what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"
                f"\nits log ({self.log}) ends with:\n{log_tail(self.log)}"
            )
        return proc.stdout

    def _prepare_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(_SERVER_USER)
            except KeyError as exc:
                raise InfraError(
                    "postgres: running as root needs Debian's `postgres` system user; "
                    "install the `postgresql` package (make setup does)"
                ) from exc
            # the server user must be able to reach the state directory
            for parent in [self.home, *self.home.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
            for path in (self.home, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            if self.log.exists():
                os.chown(self.log, user.pw_uid, user.pw_gid)

    def server_pid(self) -> int | None:
        """The postmaster's pid from `postmaster.pid` if it is alive, else None."""
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def answers(self) -> bool:
        with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True

    def _timescale_library(self, bindir: Path) -> bool:
        pg_config = bindir / "pg_config"
        if not pg_config.exists():
            return False
        out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False)
        libdir = Path(out.stdout.strip())
        return any(libdir.glob("timescaledb*.so"))

    def _wants_timescale(self, bindir: Path) -> bool:
        return self.settings.timescale != "off" and self._timescale_library(bindir)

    def _preload_is_right(self, bindir: Path) -> bool:
        with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        preloaded = "timescaledb" in {p.strip().strip('"') for p in str(row[0] if row else "").split(",")}
        return preloaded == self._wants_timescale(bindir)

    def _write_config(self, bindir: Path) -> None:
        lines = [
            f"port = {self.settings.pg_port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.sockets}'",
            "max_connections = 100",
            "shared_buffers = 256MB",
            "work_mem = 16MB",
            "maintenance_work_mem = 128MB",
            "max_wal_size = 2GB",
            "checkpoint_timeout = 15min",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] '",
            "timezone = 'UTC'",
        ]
        if self._wants_timescale(bindir):
            lines += ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = off"]
        conf = self.data / "kcloud.conf"
        conf.write_text("# written by `kcloud infra up`; edits are overwritten\n" + "\n".join(lines) + "\n")
        main_conf = self.data / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'kcloud.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'kcloud.conf'\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(_SERVER_USER)
            os.chown(conf, user.pw_uid, user.pw_gid)

    def _ensure_database(self) -> None:
        admin_url = re.sub(r"/[^/?]*(\?|$)", r"/postgres\1", self.url.split("://", 1)[1], count=1)
        with psycopg.connect("postgresql://" + admin_url, connect_timeout=5, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'kcloud'").fetchone() is None:
                conn.execute("CREATE DATABASE kcloud")

    # -- life cycle -------------------------------------------------------------------------------
    def up(self) -> str:
        if self.external:
            try:
                self.answers()
            except psycopg.Error as exc:
                raise InfraError(f"postgres: the server named by KCLOUD_DATABASE_URL does not answer: {exc}") from exc
            return "postgres: using the external server named by KCLOUD_DATABASE_URL"
        pid = self.server_pid()
        bindir = find_bindir()
        if pid is not None:
            with contextlib.suppress(psycopg.Error):
                if self._preload_is_right(bindir):
                    return f"postgres: already running (pid {pid}) on 127.0.0.1:{self.settings.pg_port}"
                # started with another shared_preload_libraries (e.g. before TimescaleDB was installed)
                self._write_config(bindir)
                wait = str(int(self.settings.startup_timeout_s))
                pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
                self._run([*pg_ctl, "-m", "fast", "-w", "-t", wait, "restart"], "restart")
                self.answers()
                return f"postgres: restarted (pid {self.server_pid()}) with shared_preload_libraries updated"
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "kcloud",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
            )
        self._write_config(bindir)
        if pid is None:
            if port_open("127.0.0.1", self.settings.pg_port):
                raise InfraError(
                    f"postgres: port 127.0.0.1:{self.settings.pg_port} is already taken by another process; "
                    f"stop it, choose another port with KCLOUD_PG_PORT, or point KCLOUD_DATABASE_URL at it"
                )
            (self.data / "postmaster.pid").unlink(missing_ok=True)  # stale: its process is gone
            timeout = int(self.settings.startup_timeout_s)
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(timeout),
                    "start",
                ],
                "start",
            )
        try:
            self.answers()
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise InfraError(
                    f"postgres: started but does not answer: {exc}\nits log ends with:\n{log_tail(self.log)}"
                ) from exc
        self._ensure_database()
        self.answers()
        return f"postgres: started (pid {self.server_pid()}) on 127.0.0.1:{self.settings.pg_port}"

    def status(self) -> PostgresStatus:
        where = "external server (KCLOUD_DATABASE_URL)" if self.external else f"127.0.0.1:{self.settings.pg_port}"
        try:
            self.answers()
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return PostgresStatus(False, f"not answering on {where}: {first}", self.external)
        return PostgresStatus(True, f"healthy on {where}", self.external)

    def down(self) -> str:
        if self.external:
            return "postgres: external server left running (not started by infra up)"
        if self.server_pid() is None:
            return "postgres: not running (nothing started by infra up)"
        bindir = find_bindir()
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], "stop")
        return "postgres: stopped"
