"""The embedded world the job tests share: a session broker (conftest), models trained on a
simulated fleet's clean history, and the real model server as a child process."""

from __future__ import annotations

from pathlib import Path

from sensorwatch.app import local
from sensorwatch.app.ledger import Ledger, stream_and_account  # noqa: F401  (the tests take them from here)
from sensorwatch.app.local import fresh_topics  # noqa: F401
from sensorwatch.core.config import Settings
from sensorwatch.simulate import Fleet
from sensorwatch.stack.kafka_broker import free_port

#: a seed whose 30 minutes inject all six anomaly kinds into the trained devices
SEED = 1
UNTRAINED = "dev-0003"


def world_settings(bootstrap: str, work: Path) -> Settings:
    s = Settings()
    s.kafka.bootstrap_servers = bootstrap
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
    s.serving.model_base_path = work / "models"
    s.serving.layout = "packed"
    s.serving.poll_wait_s = 0.5
    sim = s.simulator
    sim.devices, sim.duration_s, sim.seed, sim.anomaly_rate_per_hour = 4, 1800.0, SEED, 6.0
    sim.late_rate, sim.malformed_rate = 0.0, 0.002
    sim.realtime, sim.speed = True, 60.0
    s.training.epochs, s.training.workers, s.training.plots = 20, 1, False
    s.job.checkpoint_interval_ms = 2000
    return s


def build_world(bootstrap: str, work: Path):
    """(settings, fleet, server): models for every device but UNTRAINED, served."""
    s = world_settings(bootstrap, work)
    fleet = Fleet(s.simulator)
    out = local.train_on_history(s, fleet.start_ms, keep=lambda sensor: not sensor.startswith(UNTRAINED))
    assert out["failed"] == 0 and out["trained"] == 9, out
    server = local.ModelServerProcess(s, work / "server.log").start()
    return s, server
