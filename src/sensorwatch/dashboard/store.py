"""What the dashboard knows of the fleet, in memory that does not grow with time.

The output topics are unbounded; the dashboard is not. Each sensor (and each device model)
keeps two rings of fixed size, one point per bucket of event time:

* **fine**: one bucket per job window (``job.window_s``), ``dashboard.fine_buckets`` of them:
  the last hour at full resolution by default;
* **coarse**: ``dashboard.coarse_buckets`` buckets over ``dashboard.range_s`` (2 min each over
  24 h by default), each holding the mean, lowest and highest window mean and the highest
  score, so a spike one window long still shows on a day's chart.

A bucket is addressed by ``event_ts // bucket_ms`` modulo the ring's size and remembers its
own index, so a late write to a bucket already recycled is dropped and a read never mixes two
days. Besides the rings, a sensor keeps its latest state, its last ``incidents_per_sensor``
incidents and its model version changes (a bounded deque each); past ``max_sensors`` the
sensor quiet the longest is dropped. The memory is therefore about
``max_sensors x (fine + coarse) x 32`` bytes at worst, whatever the topics hold.

Records are those of :mod:`sensorwatch.core.contracts` (aggregates, scores, anomalies,
no-model) and :data:`sensorwatch.core.incidents.RECORD_FIELDS` (incidents).

>>> from sensorwatch.core.config import DashboardConfig
>>> store = FleetStore(DashboardConfig(fine_buckets=10, coarse_buckets=10, range_s=100), window_ms=1000)
>>> for t in range(1, 6):
...     store.ingest("aggregate", {"sensor": "d/t", "window_end": t * 1000, "mean": float(t)})
>>> store.ingest("score", {"sensor": "d/t", "status": "scored", "window_end": 5000, "score": 9.0,
...                        "threshold": 4.0, "model_name": "m", "model_version": 1})
>>> store.ingest("incident", {"incident_id": "d/t@5000", "event": "opened", "sensor": "d/t", "start": 5000,
...                           "end": None, "severity": 70, "learning": False})
>>> store.overview()["states"]
{'incident': 1}
>>> view = store.series("d/t", 10_000)
>>> view.mean[-5:].tolist(), float(view.score[-1]), [i["incident_id"] for i in view.incidents]
([1.0, 2.0, 3.0, 4.0, 5.0], 9.0, ['d/t@5000'])
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorwatch.core.config import DashboardConfig
from sensorwatch.core.contracts import SCORED
from sensorwatch.core.feedback import IncidentLabels, is_label_record
from sensorwatch.core.incidents import severity_band

#: The states a sensor is counted in on the fleet overview, worst first.
STATES = ("incident", "no_model", "prior", "learning", "quiet", "ok")

#: Per-bucket fields, float32: sum and count of window means, lowest and highest mean, highest
#: score and the threshold it was scored against.
_FIELDS = ("mean_sum", "mean_n", "mean_min", "mean_max", "score", "threshold")


class Ring:
    """A fixed number of buckets of ``bucket_ms`` event time each, reused as time moves on."""

    def __init__(self, buckets: int, bucket_ms: int):
        self.buckets, self.bucket_ms = buckets, max(1, int(bucket_ms))
        self.index = np.full(buckets, -1, dtype=np.int64)  # which bucket each slot holds
        self.data = np.zeros((len(_FIELDS), buckets), dtype=np.float32)

    def _slot(self, ts: int) -> int | None:
        """The slot of ``ts``'s bucket, reset when it held an older one; None when ``ts`` is
        older than what the slot holds (already recycled: the range has moved past it)."""
        b = ts // self.bucket_ms
        i = b % self.buckets
        if self.index[i] == b:
            return i
        if self.index[i] > b:
            return None
        self.index[i] = b
        self.data[:, i] = (0.0, 0.0, np.inf, -np.inf, -np.inf, np.nan)
        return i

    def add_mean(self, ts: int, mean: float) -> None:
        i = self._slot(ts)
        if i is None:
            return
        d = self.data
        d[0, i] += mean
        d[1, i] += 1
        d[2, i] = min(d[2, i], mean)
        d[3, i] = max(d[3, i], mean)

    def add_score(self, ts: int, score: float, threshold: float | None) -> None:
        i = self._slot(ts)
        if i is None or not score > self.data[4, i]:
            return
        self.data[4, i] = score
        self.data[5, i] = np.nan if threshold is None else threshold

    def view(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """The buckets from ``start_ms`` to ``end_ms`` in time order: (bucket start times, fields)."""
        first, last = start_ms // self.bucket_ms, end_ms // self.bucket_ms
        wanted = np.arange(max(first, last - self.buckets + 1), last + 1, dtype=np.int64)
        slots = wanted % self.buckets
        held = self.index[slots] == wanted
        out = np.full((len(_FIELDS), len(wanted)), np.nan, dtype=np.float32)
        out[:, held] = self.data[:, slots[held]]
        return wanted * self.bucket_ms, out


@dataclass
class SeriesView:
    """One sensor over a range, ready to draw: NaN where a bucket holds nothing."""

    sensor: str
    start_ms: int
    end_ms: int
    bucket_ms: int
    ts: np.ndarray
    mean: np.ndarray
    mean_min: np.ndarray
    mean_max: np.ndarray
    score: np.ndarray
    threshold: np.ndarray
    incidents: list[dict]
    versions: list[dict]


@dataclass
class SensorState:
    """The latest of one sensor (or device model) and its bounded history."""

    sensor: str
    fine: Ring
    coarse: Ring
    incidents: deque
    granularity: str = "sensor"
    last_ts: int = 0  # latest event time seen (window end)
    status: str = "ok"  # scored | prior | no_model | error, from the latest score record
    score: float | None = None
    threshold: float | None = None
    model_name: str | None = None
    model_version: int | None = None
    error: str | None = None
    open_incident: dict | None = None
    versions: deque = field(default_factory=lambda: deque(maxlen=32))

    def state(self, quiet_before_ms: int) -> str:
        if self.open_incident is not None:
            return "learning" if self.open_incident.get("learning") else "incident"
        if self.status in ("no_model", "error"):
            return "no_model"
        if self.status == "prior":  # scored by its tag's fleet prior until its own model is served
            return "prior"
        return "quiet" if self.last_ts < quiet_before_ms else "ok"


class FleetStore:
    """The fleet's bounded state, fed record by record (:meth:`ingest`), read by the pages.

    Thread-safe: one feed thread writes while the web server's requests read.
    """

    def __init__(self, cfg: DashboardConfig, window_ms: int):
        self.cfg, self.window_ms = cfg, int(window_ms)
        self.coarse_ms = max(self.window_ms, math.ceil(cfg.range_s * 1000 / cfg.coarse_buckets))
        self._sensors: OrderedDict[str, SensorState] = OrderedDict()  # least recently updated first
        self._lock = threading.Lock()
        self.latest_ts = 0  # the fleet's latest event time
        self.records = 0
        self.revision = 0  # bumps on every change: what the live pages watch
        self.evicted = 0
        self.verdicts = IncidentLabels()  # operators' verdicts, by incident id (bounded)

    # --- writing -------------------------------------------------------------------------
    def _sensor(self, name: str, granularity: str | None = None) -> SensorState:
        st = self._sensors.get(name)
        if st is None:
            if len(self._sensors) >= self.cfg.max_sensors:
                self._sensors.popitem(last=False)
                self.evicted += 1
            st = SensorState(
                name,
                Ring(self.cfg.fine_buckets, self.window_ms),
                Ring(self.cfg.coarse_buckets, self.coarse_ms),
                deque(maxlen=self.cfg.incidents_per_sensor),
            )
            self._sensors[name] = st
        else:
            self._sensors.move_to_end(name)
        if granularity:
            st.granularity = granularity
        return st

    def ingest(self, kind: str, rec: dict[str, Any]) -> None:
        """Take one record of ``kind``: ``aggregate``, ``score`` (scores, anomalies and no-model
        records alike: their ``status`` tells), ``incident`` or ``label`` (an operator's verdict;
        the labels topic's other records, the simulator's ground truth, are not the store's)."""
        with self._lock:
            if kind == "aggregate":
                self._aggregate(rec)
            elif kind == "score":
                self._score(rec)
            elif kind == "incident":
                self._incident(rec)
            elif kind == "label":
                if not is_label_record(rec):
                    return
                self.verdicts.apply(rec)
            else:
                raise ValueError(f"unknown record kind {kind!r}: aggregate, score, incident or label")
            self.records += 1
            self.revision += 1

    def _touch(self, st: SensorState, ts: int) -> None:
        st.last_ts = max(st.last_ts, ts)
        self.latest_ts = max(self.latest_ts, ts)

    def _aggregate(self, rec: dict) -> None:
        st = self._sensor(rec["sensor"], "sensor")
        ts, mean = int(rec["window_end"]), float(rec["mean"])
        st.fine.add_mean(ts, mean)
        st.coarse.add_mean(ts, mean)
        self._touch(st, ts)

    def _score(self, rec: dict) -> None:
        st = self._sensor(rec["sensor"], rec.get("granularity"))
        ts = int(rec["window_end"])
        if ts < st.last_ts and st.status in SCORED and rec.get("status") not in SCORED:
            return  # an old no-model record does not undo a newer score
        st.status = rec.get("status") or "scored"
        st.error = rec.get("error")
        if st.status not in SCORED or rec.get("score") is None:
            self._touch(st, ts)
            return
        score, threshold = float(rec["score"]), rec.get("threshold")
        st.score, st.threshold = score, threshold
        version = rec.get("model_version")
        if version is not None and (rec.get("model_name"), version) != (st.model_name, st.model_version):
            st.versions.append({"ts": ts, "model_name": rec.get("model_name"), "model_version": version})
        st.model_name, st.model_version = rec.get("model_name"), version
        st.fine.add_score(ts, score, threshold)
        st.coarse.add_score(ts, score, threshold)
        self._touch(st, ts)

    def _incident(self, rec: dict) -> None:
        st = self._sensor(rec["sensor"])
        inc = {
            k: rec.get(k)
            for k in ("incident_id", "start", "end", "severity", "learning", "peak_score", "threshold", "explanation")
        }
        inc["open"] = rec.get("event") != "closed"
        inc["closed_by"] = rec.get("closed_by")
        for i, old in enumerate(st.incidents):
            if old["incident_id"] == inc["incident_id"]:
                if old["open"] or not inc["open"]:  # a repeated 'opened' never reopens a closed one
                    st.incidents[i] = inc
                else:
                    inc = old
                break
        else:
            st.incidents.append(inc)
        if inc["open"]:
            st.open_incident = inc
        elif st.open_incident is not None and st.open_incident["incident_id"] == inc["incident_id"]:
            st.open_incident = None
        self._touch(st, int(rec.get("event_window_end") or rec.get("end") or rec.get("start") or 0))

    # --- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sensors)

    def _quiet_before(self) -> int:
        return self.latest_ts - self.cfg.quiet_windows * self.window_ms

    def overview(self) -> dict[str, Any]:
        """The fleet at a glance: sensors by state, open incidents by severity band."""
        with self._lock:
            quiet = self._quiet_before()
            states: dict[str, int] = {}
            bands: dict[str, int] = {}
            for st in self._sensors.values():
                s = st.state(quiet)
                states[s] = states.get(s, 0) + 1
                if s == "incident":
                    band = severity_band(int(st.open_incident.get("severity") or 0))
                    bands[band] = bands.get(band, 0) + 1
            return {
                "sensors": len(self._sensors),
                "states": {s: states[s] for s in STATES if s in states},
                "open_by_severity": bands,
                "latest_ts": self.latest_ts,
                "records": self.records,
                "revision": self.revision,
            }

    def rows(self, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The sensors, worst first (state, then severity, then score over threshold)."""
        with self._lock:
            quiet = self._quiet_before()
            out = []
            for st in self._sensors.values():
                s = st.state(quiet)
                if state and s != state:
                    continue
                sev = int(st.open_incident.get("severity") or 0) if st.open_incident else 0
                ratio = st.score / st.threshold if st.score is not None and st.threshold else None
                out.append(
                    {
                        "sensor": st.sensor,
                        "granularity": st.granularity,
                        "state": s,
                        "severity": sev,
                        "score": st.score,
                        "threshold": st.threshold,
                        "ratio": ratio,
                        "model": f"{st.model_name} v{st.model_version}" if st.model_name else "",
                        "last_ts": st.last_ts,
                        "error": st.error,
                    }
                )
        out.sort(key=lambda r: (STATES.index(r["state"]), -r["severity"], -(r["ratio"] or 0.0), r["sensor"]))
        return out[:limit]

    def sensor(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            st = self._sensors.get(name)
            if st is None:
                return None
            return {
                "sensor": name,
                "granularity": st.granularity,
                "state": st.state(self._quiet_before()),
                "status": st.status,
                "error": st.error,
                "score": st.score,
                "threshold": st.threshold,
                "model_name": st.model_name,
                "model_version": st.model_version,
                "last_ts": st.last_ts,
                "incidents": [{**i, "verdict": self.verdicts.get(i["incident_id"])} for i in reversed(st.incidents)],
                "versions": list(st.versions),
            }

    def series(self, name: str, range_ms: int, end_ms: int | None = None) -> SeriesView | None:
        """The sensor's chart over ``range_ms`` up to ``end_ms`` (default: the fleet's latest
        event time), from the fine ring when it covers the range, else the coarse one."""
        with self._lock:
            st = self._sensors.get(name)
            if st is None:
                return None
            end = self.latest_ts if end_ms is None else int(end_ms)
            start = end - int(range_ms)
            ring = st.fine if range_ms <= st.fine.buckets * st.fine.bucket_ms else st.coarse
            ts, d = ring.view(start, end)
            incidents = [
                dict(i)
                for i in st.incidents
                if (i["end"] or end) >= start and (i["start"] or 0) <= end  # overlaps the range
            ]
            versions = [dict(v) for v in st.versions if start <= v["ts"] <= end]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = d[0] / d[1]
        score = np.where(np.isfinite(d[4]), d[4], np.nan)
        return SeriesView(
            name,
            start,
            end,
            ring.bucket_ms,
            ts,
            mean,
            np.where(np.isfinite(d[2]), d[2], np.nan),
            np.where(np.isfinite(d[3]), d[3], np.nan),
            score,
            d[5],
            incidents,
            versions,
        )

    def nbytes(self) -> int:
        """Bytes held by the rings (the bulk of the store)."""
        with self._lock:
            return sum(r.index.nbytes + r.data.nbytes for st in self._sensors.values() for r in (st.fine, st.coarse))
