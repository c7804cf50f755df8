"""The embedded local stack: ``sensorwatch stack up | down | status``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sensorwatch.core.config import Settings
from sensorwatch.stack.kafka_broker import BrokerError, KafkaBroker, free_port
from sensorwatch.stack.topics import describe_topics, ensure_topics

__all__ = ["BrokerError", "KafkaBroker", "LocalStack", "free_port"]


@dataclass
class LocalStack:
    """A Kafka broker plus sensorwatch's topics, described by :class:`Settings`.

    The state file records the ports actually bound, so ``status`` and ``down`` find a
    stack started with free ports (port 0) from another process.
    """

    settings: Settings

    @property
    def state_file(self) -> Path:
        return Path(self.settings.stack.work_dir).resolve() / "stack.json"

    def broker(self) -> KafkaBroker:
        s = self.settings.stack
        port, cport = s.kafka_port, s.controller_port
        if self.state_file.is_file():
            state = json.loads(self.state_file.read_text())
            port, cport = state["kafka_port"], state["controller_port"]
        return KafkaBroker(
            work_dir=s.work_dir,
            port=port,
            controller_port=cport,
            heap=s.kafka_heap,
            message_max_bytes=s.message_max_bytes,
            default_partitions=self.settings.kafka.partitions,
            properties=dict(s.kafka_properties),
        )

    def up(self) -> dict:
        broker = self.broker()
        if broker.running_pid():
            seconds = 0.0
        else:
            self.state_file.unlink(missing_ok=True)
            broker = self.broker()
            seconds = broker.start(self.settings.stack.start_timeout_s)
            self.state_file.write_text(
                json.dumps({"kafka_port": broker.port, "controller_port": broker.controller_port})
            )
        self.settings.kafka.bootstrap_servers = broker.bootstrap
        created = ensure_topics(self.settings)
        return {
            "bootstrap_servers": broker.bootstrap,
            "start_seconds": round(seconds, 2),
            "topics_created": created,
            "log": str(broker.log_file),
            "pid": broker.running_pid(),
        }

    def down(self) -> bool:
        stopped = self.broker().stop()
        self.state_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict:
        broker = self.broker()
        pid = broker.running_pid()
        out: dict = {
            "running": pid is not None,
            "pid": pid,
            "bootstrap_servers": broker.bootstrap,
            "log": str(broker.log_file),
        }
        if pid is not None:
            self.settings.kafka.bootstrap_servers = broker.bootstrap
            out["topics"] = describe_topics(self.settings.kafka)
        return out
