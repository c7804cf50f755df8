"""Champion and challenger: a new version is served only if it is no worse than the one serving.

The challenger is trained on history that stops where the hold-out begins; both versions then
score the hold-out's windows, which neither was trained on, and the windows of the incidents
operators confirmed (``true-positive``), which training always leaves out. The rule:

* **false alarms**: on the hold-out's *normal* windows (no incident overlaps them, or only
  incidents an operator called ``false-positive``), the challenger's rate of windows over its
  threshold is at most the champion's plus ``lifecycle.far_tolerance``;
* **detection**: every confirmed incident the champion flags (a window over its threshold
  overlaps it), the challenger flags too.

A hold-out with no normal window judges nothing, and the challenger is not promoted. A model
with no champion (its first version) has nothing to be compared with: it is promoted, as
``sensorwatch train`` would serve it, and its false-alarm rate is recorded. A sensor the
champion does not hold (new in a packed group) counts in the challenger's rate alone.

Both versions are scored in this process by the model server's own Predict code
(:func:`sensorwatch.serving.server.run_predict`) on the SavedModels as published, so the
challenger is judged before any request of the job can reach it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sensorwatch.core.windows import SensorSeries, sequences
from sensorwatch.training.fit import labelled_windows


@dataclass
class Verdict:
    """One challenger against its champion, as the ledger and MLflow keep it."""

    model: str
    challenger: int
    champion: int | None
    promote: bool
    reason: str
    sensors: int = 0
    normal_windows: int = 0
    far_champion: float | None = None
    far_challenger: float | None = None
    incidents_checked: int = 0
    detected_champion: int | None = None
    detected_challenger: int = 0
    per_sensor: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def metrics(self) -> dict[str, float | None]:
        """The figures logged on the challenger's MLflow run."""
        return {
            "promoted": float(self.promote),
            "normal_windows": float(self.normal_windows),
            "far_champion": self.far_champion,
            "far_challenger": self.far_challenger,
            "incidents_checked": float(self.incidents_checked),
            "detected_champion": None if self.detected_champion is None else float(self.detected_champion),
            "detected_challenger": float(self.detected_challenger),
        }


class VersionScorer:
    """One published version, loaded in this process, scoring windows as the server would."""

    def __init__(self, model: str, version_dir: Path):
        import tensorflow as tf

        from sensorwatch.serving.manager import LoadedVersion
        from sensorwatch.serving.repository import read_report

        self.model, self.version = model, int(version_dir.name)
        module = tf.saved_model.load(str(version_dir), tags=["serve"])
        self.loaded = LoadedVersion(model, self.version, version_dir, module, dict(module.signatures), None)
        self.report = read_report(version_dir) or {}
        self.packed = self.report.get("layout") == "packed"

    @property
    def sensors(self) -> set[str]:
        return set(self.report.get("sensors", {}))

    def flags(self, sensor: str, windows: np.ndarray) -> np.ndarray:
        """``is_anomaly`` [N] of ``sensor``'s windows [N, S, F] under this version."""
        from sensorwatch.serving.client import predict_request, score_inputs
        from sensorwatch.serving.server import run_predict

        if len(windows) == 0:
            return np.zeros(0, bool)
        sensors = [sensor] * len(windows) if self.packed else None
        req = predict_request(self.model, score_inputs(windows, sensors))
        _, out = run_predict(self.loaded, req)
        return np.asarray(out["is_anomaly"]).astype(bool).reshape(-1)


def _rate(flags: list[np.ndarray]) -> tuple[float | None, int]:
    n = sum(len(f) for f in flags)
    return (float(sum(int(f.sum()) for f in flags)) / n if n else None), n


def judge(
    model: str,
    challenger: VersionScorer,
    champion: VersionScorer | None,
    series: dict[str, SensorSeries],
    holdout_from: int,
    abnormal: dict[str, list[tuple[int, int]]],
    confirmed: dict[str, list[tuple[int, int]]],
    *,
    seq_len: int,
    slide: int,
    window_ms: int,
    far_tolerance: float,
) -> Verdict:
    """The verdict on ``challenger`` (see the module docstring). ``series``: each of the
    model's sensors' aggregates up to now; ``abnormal``: per sensor, the intervals not to count
    as normal (incidents not called false alarms); ``confirmed``: per sensor, the incidents an
    operator confirmed."""
    far_c, far_s, det_c, det_s, checked = [], [], 0, 0, 0
    per_sensor: dict[str, dict] = {}
    for sensor in sorted(challenger.sensors):
        ser = series.get(sensor)
        if ser is None or len(ser) < seq_len:
            continue
        X, ends = sequences(ser, seq_len, slide, window_ms)
        normal = (ends >= holdout_from) & ~labelled_windows(ends, seq_len, window_ms, abnormal.get(sensor, []))
        incidents = [labelled_windows(ends, seq_len, window_ms, [iv]) for iv in confirmed.get(sensor, [])]
        incidents = [m for m in incidents if m.any()]
        want = normal.copy()
        for m in incidents:
            want |= m
        idx = np.flatnonzero(want)
        fc = np.zeros(len(ends), bool)
        fc[idx] = challenger.flags(sensor, X[idx])
        mine = {
            "normal_windows": int(normal.sum()),
            "far_challenger": float(fc[normal].mean()) if normal.any() else None,
        }
        far_c.append(fc[normal])
        hits_c = [bool(fc[m].any()) for m in incidents]
        checked += len(incidents)
        if champion is not None and sensor in champion.sensors:
            fs = np.zeros(len(ends), bool)
            fs[idx] = champion.flags(sensor, X[idx])
            far_s.append(fs[normal])
            hits_s = [bool(fs[m].any()) for m in incidents]
            det_s += sum(hits_s)
            missed = sum(1 for s, c in zip(hits_s, hits_c) if s and not c)
            mine |= {"far_champion": float(fs[normal].mean()) if normal.any() else None, "missed": missed}
        else:  # new to this model: judged on the target alone
            far_s.append(np.zeros(0, bool))
            mine["new"] = True
        det_c += sum(hits_c)
        per_sensor[sensor] = mine
    rate_c, n_normal = _rate(far_c)
    rate_s, n_champion = _rate(far_s)
    v = Verdict(
        model,
        challenger.version,
        champion.version if champion else None,
        False,
        "",
        len(per_sensor),
        n_normal,
        rate_s,
        rate_c,
        checked,
        det_s if champion else None,
        det_c,
        per_sensor,
    )
    missed = sum(p.get("missed", 0) for p in per_sensor.values())
    if champion is not None and n_normal == 0:
        v.reason = "no normal window in the hold-out to judge on"
    elif missed:
        v.reason = f"misses {missed} confirmed incident(s) the champion flags"
    elif champion is not None and n_champion and rate_s is not None and rate_c > rate_s + far_tolerance:
        v.reason = f"false-alarm rate {rate_c:.4f} above the champion's {rate_s:.4f} + {far_tolerance:g}"
    else:
        v.promote = True
        v.reason = (
            f"first version: no champion to compare with (false-alarm rate {rate_c})"
            if champion is None
            else f"false-alarm rate {rate_c:.4f} against the champion's {rate_s:.4f}, no confirmed incident missed"
        )
    return v
