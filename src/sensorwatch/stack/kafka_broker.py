"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback.

The broker is the Maven artifact ``org.apache.kafka:kafka_2.13`` run with ``java``: the
same code the official apache/kafka image runs. Its data, config, pid file and logs live
under one work folder, so ``stack down`` and a test teardown leave nothing behind.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sensorwatch.core.jars import kafka_classpath

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    RollingFile:
      name: file
      fileName: "{log}"
      filePattern: "{log}.%i"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
      SizeBasedTriggeringPolicy:
        size: 20MB
      DefaultRolloverStrategy:
        max: 3
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: file
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's own ``Uuid.randomUuid`` makes one: 16 random bytes, URL-safe
    base64, never starting with ``-``. One in 64 would, and ``StorageTool format -t -x...``
    reads that as an option (it failed CI once: "argument --cluster-id/-t: expected one argument")."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class BrokerError(RuntimeError):
    """The broker failed to start or stop; the message points at its log."""


@dataclass
class KafkaBroker:
    """One broker process. ``start()`` returns once it answers metadata requests.

    Every field comes from the configuration (:class:`~sensorwatch.core.config.StackConfig` and
    ``kafka.partitions``, through :class:`~sensorwatch.stack.LocalStack`), so no default is
    restated here; a port of 0 picks a free one.
    """

    work_dir: Path
    port: int
    controller_port: int
    heap: str
    message_max_bytes: int
    default_partitions: int
    properties: dict[str, str] = field(default_factory=dict)
    """``stack.kafka_properties``: set over the ones below"""

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir).resolve()
        if self.port == 0:
            self.port = free_port()
        if self.controller_port == 0:
            self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dir(self) -> Path:
        return self.work_dir / "kafka"

    @property
    def log_file(self) -> Path:
        return self.dir / "logs" / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": str(self.default_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(self.message_max_bytes),
            "replica.fetch.max.bytes": str(self.message_max_bytes),
            "auto.create.topics.enable": "false",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            # Flink's exactly-once sink keeps transactions open up to a checkpoint apart.
            "transaction.max.timeout.ms": str(15 * 60 * 1000),
        } | self.properties
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH; Kafka needs Java 17+ (apt-get install openjdk-17-jre-headless)")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",  # faster start, the broker is I/O bound here
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
            "-Dkafka.logs.dir=" + str(self.log_file.parent),
            "-cp",
            kafka_classpath(),
        ]

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, timeout_s: float = 60.0) -> float:
        """Format storage on first use, launch, wait until ready. Returns seconds taken."""
        if self.running_pid():
            raise BrokerError(f"a broker is already running from {self.dir} (pid {self.running_pid()})")
        if _port_open(self.port):
            raise BrokerError(f"port {self.port} is taken by another process; set stack.kafka_port")
        t0 = time.monotonic()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(self._properties())
        (self.dir / "log4j2.yaml").write_text(LOG4J2.format(log=self.log_file))
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            fmt = subprocess.run(
                self._java() + ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        stdout = open(self.dir / "logs" / "stdout.log", "ab")
        proc = subprocess.Popen(
            self._java() + ["kafka.Kafka", str(props)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI that started it; `stack down` stops it
        )
        stdout.close()
        self.pid_file.write_text(str(proc.pid))
        try:
            self._wait_ready(proc, t0 + timeout_s)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - t0

    def _wait_ready(self, proc: subprocess.Popen, deadline: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"Kafka exited with {proc.returncode} while starting; see {self.log_file}")
            if _port_open(self.port):
                try:
                    admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                    try:
                        admin.describe_cluster()
                    finally:
                        admin.close()
                    return
                except KafkaError:
                    pass  # listening but not yet serving metadata: wait on
            time.sleep(0.2)
        raise BrokerError(f"Kafka not ready within the start timeout; see {self.log_file}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after the timeout."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL, no controlled shutdown: for fault-injection tests."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                _reap(pid)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
