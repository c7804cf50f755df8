"""Small simulated histories and settings for training tests."""

from __future__ import annotations

from pathlib import Path

from sensorwatch.core.config import Settings, load_settings
from sensorwatch.simulate.history import fleet_history

START = 1_700_000_000_000


def train_settings(
    tmp: Path, kind: str = "dense_ae", layout: str = "per-sensor", prior: bool = False, **training
) -> Settings:
    t = {"kind": kind, "epochs": 6, "workers": 1, "plots": False, **training}
    return load_settings(
        None,
        overrides={
            "simulator": {"devices": 2, "duration_s": 2 * 3600, "start_ms": START, "anomaly_rate_per_hour": 0.0},
            "training": t,
            "serving": {"model_base_path": str(tmp / "models"), "layout": layout, "packed_groups": 2},
            # these tests look at the sensors' and devices' models; the fleet priors have theirs
            # (tests/training/test_prior_training.py, test_lifecycle.py, tests/udfs/test_scoring.py)
            "prior": {"enabled": prior},
        },
    )


def history(settings: Settings, anomalies_per_hour: float = 0.0, **sim):
    cfg = settings.simulator.model_copy(update={"anomaly_rate_per_hour": anomalies_per_hour, "warmup_s": 0, **sim})
    return fleet_history(cfg, int(settings.job.window_s * 1000))
