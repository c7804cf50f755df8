"""A simulated fleet's history as tumbling aggregates, in process (no Kafka, no Flink).

Used to train the demo's models before the live stream starts, and by tests. The
aggregation is :func:`sensorwatch.windows.aggregate_readings`, the job's TUMBLE rule.
"""

from __future__ import annotations

import numpy as np

from sensorwatch.config import SimulatorConfig
from sensorwatch.simulate.fleet import Fleet, Label
from sensorwatch.windows import SensorSeries, aggregate_readings


def fleet_history(cfg: SimulatorConfig, window_ms: int) -> tuple[dict[str, SensorSeries], list[Label]]:
    """All readings of ``cfg``'s fleet, aggregated per sensor, and the ground-truth labels."""
    fleet = Fleet(cfg)
    blocks = list(fleet.blocks())
    idx = np.concatenate([b.sensor_idx for b in blocks])
    ts = np.concatenate([b.ts for b in blocks])
    val = np.concatenate([b.value for b in blocks])
    names = np.asarray(fleet.sensors, dtype=object)[idx]
    return aggregate_readings(names, ts, val, window_ms), fleet.labels


def label_intervals(labels: list[Label]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for lab in labels:
        out.setdefault(lab.sensor, []).append((lab.start, lab.end))
    return out
