"""The embedded default, piece by piece: what ``sensorwatch demo``, the end-to-end tests and
the benchmarks put together (local Kafka, local model server, training on simulated history,
the job on a Flink mini-cluster, the simulator), and the Kafka readers ``sensorwatch tail``
and the ledger use.

Each helper does one thing with real parts; none of them fakes another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sensorwatch.core.config import Settings, SimulatorConfig


def history_config(sim: SimulatorConfig, live_start_ms: int, hours: float = 2.0) -> SimulatorConfig:
    """The same fleet (seed, devices, tags) over ``hours`` before ``live_start_ms``, without
    injected anomalies: the clean history the demo's models learn "normal" from."""
    h = sim.model_copy(deep=True)
    h.duration_s = hours * 3600.0
    h.start_ms = live_start_ms - int(h.duration_s * 1000)
    h.anomaly_rate_per_hour = h.relation_faults_per_hour = 0.0
    h.late_rate = h.malformed_rate = h.out_of_order_rate = 0.0
    h.labels_file = None
    return h


def train_on_history(
    settings: Settings,
    live_start_ms: int,
    hours: float = 2.0,
    progress: bool = False,
    keep: Callable[[str], bool] | None = None,
) -> dict:
    """Train and publish one model per simulated sensor (those ``keep`` accepts) on clean
    history; the summary."""
    from sensorwatch.simulate.history import fleet_history
    from sensorwatch.training.trainer import summary, train_fleet

    sim = settings.simulator
    # the live stream loses readings to dead letters and lateness (and shifts a few across
    # windows): the history must show the model such windows as normal
    loss = max(0.002, sim.late_rate + sim.malformed_rate + sim.out_of_order_rate / 10)
    series, _ = fleet_history(history_config(sim, live_start_ms, hours), int(settings.job.window_s * 1000), loss)
    if keep is not None:
        series = {k: v for k, v in series.items() if keep(k)}
    return summary(train_fleet(series, settings, progress=progress, plots=False))


def renamed_topics(s: Settings, prefix: str = "sensorwatch") -> Settings:
    """A copy of ``s`` with every topic and the job's consumer group renamed to a new, unique
    name, nothing created (:func:`fresh_topics` creates them)."""
    s = s.model_copy(deep=True)
    suffix = uuid.uuid4().hex[:8]
    for name in type(s.kafka.topics).model_fields:
        setattr(s.kafka.topics, name, f"{prefix}.{name}.{suffix}")
    s.job.group_id = f"{prefix}-job-{suffix}"
    return s


def fresh_topics(s: Settings, prefix: str = "sensorwatch", topic_configs: dict[str, str] | None = None) -> Settings:
    """:func:`renamed_topics`, the topics created (with ``topic_configs``): one run's records
    never mix with another's on a shared broker."""
    from sensorwatch.stack.topics import ensure_topics

    s = renamed_topics(s, prefix)
    ensure_topics(s, topic_configs)
    return s


class ModelServerProcess:
    """``sensorwatch serve`` as a child process (TensorFlow stays out of the job's process).

    Its flags come from ``settings.serving`` through :func:`~sensorwatch.serving.flags.server_argv`,
    the builder ``sensorwatch serve`` itself uses; ``config_file`` also hands the child the
    configuration file (for what flags do not carry).
    """

    def __init__(self, settings: Settings, log_file: Path, config_file: Path | None = None):
        self.settings = settings
        self.log_file = log_file
        self.config_file = config_file
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> ModelServerProcess:
        import grpc

        from sensorwatch.serving.client import open_channel
        from sensorwatch.serving.flags import server_argv

        cmd = [sys.executable, "-m", "sensorwatch"]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        cmd += ["serve", "--", *server_argv(self.settings.serving)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_file, "ab") as log:  # the child holds its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        channel = open_channel(self.settings.serving)  # TLS exactly as the job's client does it
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"model server exited with {self.proc.returncode}; see {self.log_file}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=1.0)
                    return self
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"model server not ready after {timeout_s} s; see {self.log_file}") from None
        finally:
            channel.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def flush_watermark(settings: Settings, event_ts_ms: int) -> int:
    """Send one valid reading (sensor ``watermark/flush``, in the topic's format) to every partition of the readings topic
    at ``event_ts_ms``, so every partition's watermark passes the windows before it: at the end of
    a finite stream, the last windows close. Returns the number sent (they are readings, and
    reconcile as such)."""
    from sensorwatch.core.contracts import device_message
    from sensorwatch.core.kafka import producer

    p = producer(settings.kafka, acks="all")
    try:
        parts = sorted(p.partitions_for(settings.kafka.topics.readings))
        for part in parts:
            if settings.kafka.readings_format == "device":
                value = device_message("watermark", event_ts_ms, {"flush": 0.0})
            else:
                value = json.dumps({"device": "watermark", "tag": "flush", "ts": event_ts_ms, "value": 0.0})
            p.send(
                settings.kafka.topics.readings,
                value.encode(),
                key=b"watermark",
                partition=part,
                timestamp_ms=min(event_ts_ms, int(time.time() * 1000)),
            )
        p.flush(30)
        return len(parts)
    finally:
        p.close()


def reader(settings: Settings, topics: list[str]):
    """A consumer of ``topics`` from their start, in no group, committing nothing, reading only
    committed records: how a check reads back what a job wrote."""
    from sensorwatch.core.kafka import consumer

    return consumer(
        settings.kafka,
        *topics,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )


def consume(
    settings: Settings,
    topic: str | list[str],
    stop: Callable[[list[dict]], bool],
    timeout_s: float,
    on_record: Callable[[dict, Any], None] | None = None,
) -> list[dict]:
    """JSON records of ``topic`` (or topics) from the beginning until ``stop(records)`` or
    ``timeout_s``; ``on_record(record, message)`` sees each as it comes."""
    topics = [topic] if isinstance(topic, str) else list(topic)
    c = reader(settings, topics)
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not stop(out):
            for msgs in c.poll(timeout_ms=200).values():
                for m in msgs:
                    rec = json.loads(m.value)
                    rec["_kafka_ts"] = m.timestamp
                    out.append(rec)
                    if on_record is not None:
                        on_record(rec, m)
    finally:
        c.close()
    return out


def tail(settings: Settings, topic: str, from_beginning: bool = False) -> Iterator[dict]:
    """Follow ``topic`` for ever: one JSON record at a time (``sensorwatch tail``)."""
    from sensorwatch.core.kafka import consumer

    c = consumer(
        settings.kafka,
        topic,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed",
    )
    try:
        while True:
            for msgs in c.poll(timeout_ms=500).values():
                for m in msgs:
                    yield json.loads(m.value)
    finally:
        c.close()
