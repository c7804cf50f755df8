"""The simulator into the real broker: every reading and label arrives, as sent."""

import json

import pytest

from sensorwatch.core.config import ValidationConfig
from sensorwatch.core.contracts import ContractError, parse_reading
from sensorwatch.core.kafka import consumer
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _drain(settings, topic):
    c = consumer(settings.kafka, topic, group_id=None, consumer_timeout_ms=4000)
    out = list(c)
    c.close()
    return out


def test_simulate_publishes_readings_and_labels(settings, tmp_path):
    sim = settings.simulator
    sim.devices, sim.duration_s, sim.anomaly_rate_per_hour = 5, 1200, 4.0
    sim.malformed_rate, sim.late_rate = 0.01, 0.01
    sim.labels_file = tmp_path / "labels.jsonl"
    fleet = Fleet(sim)
    stats = simulate(sim, settings.kafka, fleet=fleet)

    readings = _drain(settings, settings.kafka.topics.readings)
    assert len(readings) == stats.readings
    valid, invalid = 0, 0
    for m in readings:
        try:
            r = parse_reading(m.value, m.timestamp, ValidationConfig())
        except ContractError:
            invalid += 1
            continue
        valid += 1
        assert m.key.decode() == r.device
        assert m.timestamp >= r.ts  # CreateTime is the device's send time
    assert invalid == stats.malformed > 0
    assert valid == stats.readings - stats.malformed

    labels = [json.loads(m.value) for m in _drain(settings, settings.kafka.topics.labels)]
    expected = [lab.to_dict() for lab in fleet.labels]
    assert labels and sorted(labels, key=json.dumps) == sorted(expected, key=json.dumps)
    in_file = [json.loads(line) for line in sim.labels_file.read_text().splitlines()]
    assert in_file == expected
