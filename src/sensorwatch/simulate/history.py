"""A simulated fleet's history as tumbling aggregates, in process (no Kafka, no Flink).

Used to train the demo's models before the live stream starts, and by tests. The
aggregation is :func:`sensorwatch.core.windows.aggregate_readings`, the job's TUMBLE rule.
"""

from __future__ import annotations

import numpy as np

from sensorwatch.core.config import SimulatorConfig
from sensorwatch.core.windows import SensorSeries, aggregate_readings
from sensorwatch.simulate.fleet import Fleet, Label


def fleet_history(
    cfg: SimulatorConfig,
    window_ms: int,
    loss_rate: float = 0.0,
) -> tuple[dict[str, SensorSeries], list[Label]]:
    """All readings of ``cfg``'s fleet, aggregated per sensor, and the ground-truth labels.

    ``loss_rate`` drops that share of readings at random, as the live stream loses some to
    the dead-letter and late topics: without it every tumbling window of the history holds
    exactly the same number of readings, and a model trained on it flags a window one reading
    short as an anomaly.
    """
    fleet = Fleet(cfg)
    blocks = list(fleet.blocks())
    idx = np.concatenate([b.sensor_idx for b in blocks])
    ts = np.concatenate([b.ts for b in blocks])
    val = np.concatenate([b.value for b in blocks])
    if loss_rate > 0:
        keep = np.random.default_rng(cfg.seed + 7).uniform(0, 1, idx.size) >= loss_rate
        idx, ts, val = idx[keep], ts[keep], val[keep]
    names = np.asarray(fleet.sensors, dtype=object)[idx]
    return aggregate_readings(names, ts, val, window_ms), fleet.labels


def label_intervals(labels: list[Label]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for lab in labels:
        out.setdefault(lab.sensor, []).append((lab.start, lab.end))
    return out
