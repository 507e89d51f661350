"""The local PostgreSQL cluster: Debian's `postgresql` server binaries, run as the project's own cluster
in `<state_dir>/postgres/` on 127.0.0.1 and its own port, unless `KCLOUD_DATABASE_URL` names an existing
server, which is then used as-is (never started or stopped here).

`initdb` and `postgres` refuse to run as root: when we are root, the cluster belongs to Debian's
`postgres` system user and every server command runs through `runuser -u postgres`.

Authentication: no `trust`. `initdb` gives the superuser `kcloud` a generated password and every
connection, local socket or TCP, must present its role's password (scram-sha-256). `up` also makes the
roles the service runs under, with generated passwords: `kcloud_owner`, which owns the `kcloud` database
and runs the migrations, and `kcloud_service`, which owns nothing (`kcloud.db.migrate` grants it what the
service needs: on the ledger only SELECT and INSERT). The passwords are kept in `<state_dir>/pgpass`
(mode 0600, a libpq password file: `PGPASSFILE=.kcloud/pgpass psql ...`), from which the settings build
the URLs. A cluster made before this (with `trust`) is given the passwords and the rules on its next `up`,
and the `kcloud` database's objects pass from the superuser to the owner role.

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
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from infra.errors import InfraError
from infra.process import log_tail, port_open

__all__ = ["PostgresService", "PostgresStatus", "find_bindir"]

from kcloud.settings import LOCAL_OWNER_ROLE, LOCAL_SERVICE_ROLE, LOCAL_SUPERUSER, Settings, local_passwords

_SERVER_USER = "postgres"
_ROLES = (LOCAL_SUPERUSER, LOCAL_OWNER_ROLE, LOCAL_SERVICE_ROLE)
_HBA = """# written by `kcloud infra up`; edits are overwritten: every connection presents its role's password
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""


_REASSIGN = """
DO $$
DECLARE
    obj record;
    old_owner text := {old};
    new_owner text := {new};
BEGIN
    FOR obj IN
        SELECT c.relname, c.relkind FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND pg_get_userbyid(c.relowner) = old_owner
          AND c.relkind IN ('r', 'p', 'v', 'm')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format(
            'ALTER %s %I OWNER TO %I',
            CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
            obj.relname, new_owner
        );
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND pg_get_userbyid(p.proowner) = old_owner
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj.fn, new_owner);
    END LOOP;
END
$$
"""


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

    @property
    def url(self) -> str:
        """The external server's URL, or the local cluster's `kcloud` database as its superuser (the password
        read from `<state_dir>/pgpass` now, since `up` may have just made it)."""
        if self.settings.database_url is not None:
            return self.settings.database_url
        return self.settings.local_database_url

    def _admin_url(self) -> str:
        return self.settings.local_role_url(LOCAL_SUPERUSER, "postgres")

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

    def _passwords(self) -> dict[str, str]:
        """The roles' passwords from `<state_dir>/pgpass`, generating (and writing, mode 0600) those missing."""
        path = self.settings.pgpass_file
        found = local_passwords(path)
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)  # libpq ignores a password file that others may read, and so should we
        if all(role in found for role in _ROLES):
            return found
        for role in _ROLES:
            found.setdefault(role, secrets.token_hex(24))
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(path.name + ".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# the local cluster's roles, written by `kcloud infra up` (a libpq password file)\n")
            fh.writelines(f"*:*:*:{role}:{found[role]}\n" for role in _ROLES)
        os.replace(fresh, path)
        return found

    def _initdb(self, bindir: Path) -> None:
        pwfile = self.home / "initdb.pw"  # read by initdb (the server user) and removed at once
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._passwords()[LOCAL_SUPERUSER] + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(_SERVER_USER)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    LOCAL_SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _trusts_anyone(self) -> bool:
        hba = self.data / "pg_hba.conf"
        try:
            lines = hba.read_text().splitlines()
        except OSError:
            return True
        return any(line.split()[-1:] == ["trust"] for line in lines if not line.lstrip().startswith("#"))

    def _secure(self) -> None:
        """Give the superuser and the roles their passwords and require them (pg_hba.conf, reloaded)."""
        passwords = self._passwords()
        with psycopg.connect(self._admin_url(), connect_timeout=5, autocommit=True) as conn:
            for role in _ROLES:
                name = sql.Identifier(role)
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(name))
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(passwords[role])))
                if role != LOCAL_SUPERUSER:  # the storage-mode probe reads shared_preload_libraries
                    conn.execute(sql.SQL("GRANT pg_read_all_settings TO {}").format(name))
            if self._trusts_anyone():
                hba = self.data / "pg_hba.conf"
                hba.write_text(_HBA)
                if os.geteuid() == 0:
                    user = pwd.getpwnam(_SERVER_USER)
                    os.chown(hba, user.pw_uid, user.pw_gid)
                conn.execute("SELECT pg_reload_conf()")

    def _ensure_database(self, bindir: Path) -> None:
        owner = sql.Identifier(LOCAL_OWNER_ROLE)
        with psycopg.connect(self._admin_url(), connect_timeout=5, autocommit=True) as conn:
            row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kcloud'").fetchone()
            if row is None:
                conn.execute(sql.SQL("CREATE DATABASE kcloud OWNER {}").format(owner))
            elif row[0] != LOCAL_OWNER_ROLE:
                conn.execute(sql.SQL("ALTER DATABASE kcloud OWNER TO {}").format(owner))
        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            # what a superuser made here before the owner role existed passes to that role
            try:
                conn.execute(
                    sql.SQL(_REASSIGN).format(old=sql.Literal(LOCAL_SUPERUSER), new=sql.Literal(LOCAL_OWNER_ROLE))
                )
            except psycopg.Error as exc:
                raise InfraError(
                    f"postgres: the objects of database kcloud made before the role {LOCAL_OWNER_ROLE} existed "
                    f"could not be given to it ({exc}); `make clean` deletes the local state and starts afresh"
                ) from exc
            if self._wants_timescale(bindir):  # CREATE EXTENSION timescaledb needs a superuser
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

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
                    self._secure()  # roles, passwords and rules as they should be (idempotent)
                    self._ensure_database(bindir)
                    return f"postgres: already running (pid {pid}) on 127.0.0.1:{self.settings.pg_port}"
                # started with another shared_preload_libraries (e.g. before TimescaleDB was installed)
                self._write_config(bindir)
                wait = str(int(self.settings.startup_timeout_s))
                pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
                self._run([*pg_ctl, "-m", "fast", "-w", "-t", wait, "restart"], "restart")
                self._secure()
                self._ensure_database(bindir)
                self.answers()
                return f"postgres: restarted (pid {self.server_pid()}) with shared_preload_libraries updated"
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir)
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
        self._secure()
        self._ensure_database(bindir)
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
