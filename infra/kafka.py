"""The local Kafka broker: Apache Kafka in KRaft mode (one combined broker+controller on 127.0.0.1),
run from the jars Maven resolves from Maven Central through `infra/kafka/pom.xml`.

Layout under `<state_dir>/kafka/`: `lib/` (jars), `data/` (log dirs, formatted once), `server.properties`,
`log4j2.xml`, `kafka.out` (the broker's log) and `kafka.pid`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from infra.process import alive_pid, log_tail, port_open, spawn, stop_pid, wait_until
from kcloud.kafka_client import ensure_topics
from kcloud.settings import Settings

__all__ = ["KafkaService", "KafkaStatus"]

_POM = Path(__file__).parent / "kafka" / "pom.xml"
_LOG4J = Path(__file__).parent / "kafka" / "log4j2.xml"
_MAIN_CLASS = "kafka.Kafka"


@dataclass(frozen=True)
class KafkaStatus:
    """What `infra status` says about the broker."""

    healthy: bool
    detail: str
    pid: int | None = None


class KafkaService:
    """Start, check and stop the local broker described by `settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "kafka"
        self.lib = self.home / "lib"
        self.data = self.home / "data"
        self.log = self.home / "kafka.out"
        self.pid_file = self.home / "kafka.pid"
        self.host = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]
        self.port = settings.kafka_port

    # -- set-up -----------------------------------------------------------------------------------
    def fetch_jars(self) -> None:
        """Resolve the broker's jars from Maven Central into `lib/` (once; Maven caches in ~/.m2)."""
        if self.lib.is_dir() and any(self.lib.glob("kafka_2.13-*.jar")):
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise InfraError(
                "kafka: needs `java` (17+) and `mvn` on PATH to fetch and run the broker; "
                "install them with `apt-get install -y openjdk-17-jre-headless maven` (make setup does)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.lib}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(self.lib, ignore_errors=True)
            raise InfraError(f"kafka: Maven could not fetch the broker jars:\n{(proc.stdout + proc.stderr)[-3000:]}")

    def _java(self, *args: str, heap: bool = False) -> list[str]:
        cmd = ["java"]
        if heap:
            mb = self.settings.kafka_heap_mb
            cmd += [f"-Xmx{mb}m", f"-Xms{min(mb, 256)}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        cmd += [f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}", "-cp", f"{self.lib}/*", *args]
        return cmd

    def _write_config(self) -> Path:
        cport = self.settings.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{cport}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.partitions": str(self.settings.kafka_partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": "10485760",
            "log.retention.check.interval.ms": "60000",
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        shutil.copyfile(_LOG4J, self.home / "log4j2.xml")
        return path

    def _format_once(self, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            out = subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=False,
            )
            cluster_id = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
            if not cluster_id:
                raise InfraError(f"kafka: could not make a cluster id:\n{out.stderr[-2000:]}")
            cluster_id_file.write_text(cluster_id)
        proc = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id_file.read_text().strip(),
                "-c",
                str(config),
                "--standalone",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise InfraError(f"kafka: formatting storage in {self.data} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")

    # -- life cycle -------------------------------------------------------------------------------
    def running_pid(self) -> int | None:
        return alive_pid(self.pid_file, _MAIN_CLASS)

    def up(self) -> str:
        """Start the broker unless it already runs; wait until it answers; create the project topics."""
        pid = self.running_pid()
        if pid is not None and self._answers():
            self.ensure_topics()
            return f"kafka: already running (pid {pid}) on {self.host}:{self.port}"
        if pid is None:
            for port in (self.port, self.settings.kafka_controller_port):
                if port_open(self.host, port):
                    raise InfraError(
                        f"kafka: port {self.host}:{port} is already taken by another process; stop it or "
                        f"choose other ports with KCLOUD_KAFKA_BOOTSTRAP / KCLOUD_KAFKA_CONTROLLER_PORT"
                    )
            self.fetch_jars()
            config = self._write_config()
            self._format_once(config)
            pid = spawn(self._java(_MAIN_CLASS, str(config), heap=True), self.log)
            self.pid_file.write_text(str(pid))

        def died() -> str | None:
            return None if self.running_pid() is not None else "the broker process exited"

        try:
            ok = wait_until(self._answers, self.settings.startup_timeout_s, interval=0.5, abort=died)
        except RuntimeError as exc:
            raise InfraError(
                f"kafka: {exc} during start-up; its log ({self.log}) ends with:\n{log_tail(self.log)}"
            ) from exc
        if not ok:
            raise InfraError(
                f"kafka: no answer to a metadata request on {self.host}:{self.port} after "
                f"{self.settings.startup_timeout_s:.0f}s (last error: "
                f"{getattr(wait_until, 'last_error', None)!r}); its log ({self.log}) ends with:\n"
                f"{log_tail(self.log)}"
            )
        self.ensure_topics()
        return f"kafka: started (pid {pid}) on {self.host}:{self.port}"

    def _answers(self) -> bool:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=3000, client_id="kcloud-infra"
        )
        try:
            admin.describe_cluster()
            return True
        finally:
            admin.close()

    def ensure_topics(self) -> list[str]:
        """Create the project topics that do not exist yet; returns the names created."""
        return ensure_topics(self.settings)

    def status(self) -> KafkaStatus:
        pid = self.running_pid()
        try:
            answers = self._answers()
        except Exception as exc:
            answers = False
            why = str(exc) or type(exc).__name__
        else:
            why = ""
        if answers:
            owner = f"pid {pid}" if pid else "not started by infra up"
            return KafkaStatus(True, f"healthy on {self.host}:{self.port} ({owner})", pid)
        if pid:
            return KafkaStatus(False, f"process {pid} runs but does not answer on {self.host}:{self.port}: {why}", pid)
        return KafkaStatus(False, f"stopped (nothing answers on {self.host}:{self.port})")

    def down(self) -> str:
        pid = self.running_pid()
        if pid is None:
            return "kafka: not running (nothing started by infra up)"
        stop_pid(pid, timeout=30)
        self.pid_file.unlink(missing_ok=True)
        return f"kafka: stopped (pid {pid})"
