"""The embedded world the job tests share: a session broker (conftest), models trained on a
simulated fleet's clean history, and the real model server as a child process."""

from __future__ import annotations

from pathlib import Path

from sensorwatch.app import local
from sensorwatch.app.ledger import Ledger, stream_and_account  # noqa: F401  (the tests take them from here)
from sensorwatch.core.config import Settings
from sensorwatch.simulate import Fleet
from sensorwatch.stack.kafka_broker import free_port
from sensorwatch.stack.topics import HISTORICAL


def fresh_topics(s: Settings, prefix: str = "sensorwatch") -> Settings:
    """:func:`sensorwatch.app.local.fresh_topics`, the topics :data:`HISTORICAL`: the tests'
    test vectors carry fixed Kafka timestamps (2023), which the session broker's retention,
    checked every second (tests/conftest.py), would otherwise delete before the job reads them."""
    return local.fresh_topics(s, prefix, HISTORICAL)


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


def assert_whole_across(ledger: Ledger, readings: int, at_ms: int, what: str) -> tuple[set[str], dict[str, dict]]:
    """Nothing lost or doubled across ``what`` (a stop, a rescale) at wall time ``at_ms``: the
    aggregates, late readings and dead letters account for every reading sent, no record was
    written twice (not even before a dedup), and every count window of a trained sensor is
    scored, some on each side. Returns (the windows owed, the scored records by window)."""
    s = ledger.s
    assert ledger.readings_accounted() == readings
    assert ledger.raw["aggregates"] == len(ledger.aggregates) and ledger.raw["dead"] == len(ledger.dead)
    assert ledger.duplicates(s.kafka.topics.anomalies) == 0 and ledger.duplicates(s.kafka.topics.scores) == 0
    want = {k for k in ledger.windows_expected() if not k.startswith(UNTRAINED)}
    scored = ledger.scored()
    assert want <= set(scored), f"{len(want - set(scored))} of {len(want)} windows lost across the {what}"
    before = sum(r["processing_ts"] < at_ms for r in scored.values())
    assert 0 < before < len(scored), f"windows are scored on both sides of the {what}"
    return want, scored
