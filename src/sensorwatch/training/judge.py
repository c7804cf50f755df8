"""Champion and challenger: a new version is served only if it is no worse than the one serving.

The challenger is trained on history that stops where the hold-out begins; both versions then
score the hold-out's windows, which neither was trained on, and the windows of the incidents
operators confirmed (``true-positive``), which training always leaves out. The rule:

* **false alarms**: on the hold-out's *normal* windows (no incident overlaps them, or only
  incidents an operator called ``false-positive``), the challenger's rate of windows over its
  threshold is at most the champion's plus ``lifecycle.far_tolerance``;
* **detection**: every confirmed incident the champion flags (a window over its threshold
  overlaps it), the challenger flags too;
* **calibration**: a new version starts the sensor's calibration again from its incident
  seed (its normal validation scores). A seed of fewer than ``job.incidents.learning_windows``
  scores puts the sensor back in its learning period, in which no incident is alerted; so a
  challenger with such a seed does not replace a champion of the sensor's own under which the
  sensor has left it (its seed plus the sensor's windows since it was promoted: a retrain on a
  short history would blind the sensor for hours).

A sensor the champion does not hold (a model's first version, or a sensor new in a packed
group) is compared with what scores it now: its tag's fleet prior
(:class:`PriorScorer`, the sensor's windows normalised by its own running statistics from
the first window of the history, as the job's scorer does). A sensor with neither counts in
the challenger's rate alone, and a model none of whose sensors has a champion (no prior
served for their tags) is promoted, as ``sensorwatch train`` would serve it, with its
false-alarm rate recorded. A hold-out with no normal window judges nothing, and a challenger
that has a champion is then not promoted.

Both versions are scored in this process by the model server's own Predict code
(:func:`sensorwatch.serving.server.run_predict`) on the SavedModels as published, so the
challenger is judged before any request of the job can reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sensorwatch.core.prior import normalise_series, tag_of
from sensorwatch.core.windows import SensorSeries, sequences
from sensorwatch.training.fit import labelled_windows


@dataclass
class Verdict:
    """One challenger against its champion, as the ledger and MLflow keep it."""

    model: str
    challenger: int
    champion: int | None
    """the version of this model that serves now (None: its first version)"""
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
    champion_models: list[str] = field(default_factory=list)
    """every version judged against, ``<model> v<version>``: this model's, a fleet prior's"""

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
        self.served_from_ms: int | None = None
        """when this version began to serve (event time; None: before every window judged)"""

    @property
    def sensors(self) -> set[str]:
        return set(self.report.get("sensors", {}))

    def seed_count(self, sensor: str) -> float:
        """How many scores this version's incident seed for ``sensor`` holds (0: none)."""
        from sensorwatch.serving.repository import report_seed

        n = report_seed(self.report.get("sensors", {}).get(sensor) or {})[0]
        return n if n == n else 0.0

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"

    def covers(self, sensor: str) -> bool:
        """Whether this version scores ``sensor``."""
        return sensor in self.sensors

    def prepare(self, windows: np.ndarray) -> np.ndarray:
        """A sensor's count windows, in event-time order, as this version takes them."""
        return windows

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


class PriorScorer(VersionScorer):
    """A tag's fleet prior (``_prior~<tag>``) as the champion of that tag's sensors no model
    holds: it scores every one of them, each normalised by its own running statistics
    (:func:`sensorwatch.core.prior.normalise_series`) from its first window in the history."""

    def __init__(self, model: str, version_dir: Path, tag: str):
        super().__init__(model, version_dir)
        self.tag = tag

    def covers(self, sensor: str) -> bool:
        return tag_of(sensor) == self.tag

    def prepare(self, windows: np.ndarray) -> np.ndarray:
        return normalise_series(windows)


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
    prior: Callable[[str], VersionScorer | None] | None = None,
    learning_windows: int = 0,
) -> Verdict:
    """The verdict on ``challenger`` (see the module docstring). ``series``: each of the
    model's sensors' aggregates up to now; ``abnormal``: per sensor, the intervals not to count
    as normal (incidents not called false alarms); ``confirmed``: per sensor, the incidents an
    operator confirmed; ``prior(sensor)``: the fleet prior that scores a sensor no champion
    holds, or None; ``learning_windows``: the incident stage's learning period (the
    calibration rule)."""
    far_c, far_s, det_c, det_s, checked = [], [], 0, 0, 0
    per_sensor: dict[str, dict] = {}
    judged_against: set[str] = set()
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
        champ = champion if champion is not None and champion.covers(sensor) else None
        if champ is None and prior is not None:
            champ = prior(sensor)
        if champ is not None:
            fs = np.zeros(len(ends), bool)
            fs[idx] = champ.flags(sensor, champ.prepare(X)[idx])
            far_s.append(fs[normal])
            hits_s = [bool(fs[m].any()) for m in incidents]
            det_s += sum(hits_s)
            missed = sum(1 for s, c in zip(hits_s, hits_c) if s and not c)
            mine |= {
                "far_champion": float(fs[normal].mean()) if normal.any() else None,
                "missed": missed,
                "champion": champ.label,
            }
            if champ is champion:
                since = champion.served_from_ms
                n_c = challenger.seed_count(sensor)
                n_s = champion.seed_count(sensor) + int((ends > since).sum() if since is not None else len(ends))
                if n_c < learning_windows <= n_s:
                    mine["relearns"] = {"seed": n_c, "champion_history": n_s}
            judged_against.add(champ.label)
        else:  # no champion for it, nor a prior: judged on the target alone
            far_s.append(np.zeros(0, bool))
            mine["new"] = True
        det_c += sum(hits_c)
        per_sensor[sensor] = mine
    rate_c, n_normal = _rate(far_c)
    rate_s, n_champion = _rate(far_s)
    against = sorted(judged_against)
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
        det_s if against else None,
        det_c,
        per_sensor,
        against,
    )
    missed = sum(p.get("missed", 0) for p in per_sensor.values())
    relearn = sorted(s for s, p in per_sensor.items() if "relearns" in p)
    who = ", ".join(against)
    if against and n_normal == 0:
        v.reason = "no normal window in the hold-out to judge on"
    elif missed:
        v.reason = f"misses {missed} confirmed incident(s) the champion ({who}) flags"
    elif relearn:
        r = per_sensor[relearn[0]]["relearns"]
        v.reason = (
            f"its incident seed holds {r['seed']:g} normal validation scores for {relearn[0]}, fewer than the "
            f"{learning_windows} of the learning period, which the sensor has left under the champion "
            f"({r['champion_history']:g} scores): promoted, {len(relearn)} sensor(s) would be learning again, not alerted"
        )
    elif against and n_champion and rate_s is not None and rate_c > rate_s + far_tolerance:
        v.reason = f"false-alarm rate {rate_c:.4f} above the champion's ({who}) {rate_s:.4f} + {far_tolerance:g}"
    else:
        v.promote = True
        v.reason = (
            f"first version: no champion to compare with (false-alarm rate {rate_c})"
            if not against
            else f"false-alarm rate {rate_c:.4f} against the champion's ({who}) {rate_s:.4f}, "
            "no confirmed incident missed"
        )
    return v
