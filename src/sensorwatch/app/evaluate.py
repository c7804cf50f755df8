"""Event-level precision, recall and detection delay of anomaly records against ground truth.

The unit is the *event*, as an operator sees it:

* an **alert** is a maximal run of one sensor's anomalous count windows that overlap each
  other in time (each window spans S tumbling means, so one incident lights up several);
* an alert is a **true positive** when its time span ``[first window start, last window end]``
  overlaps a labelled interval of that sensor; precision = true alerts / alerts;
* an injected event is **detected** when a true alert overlaps it; recall = detected / events;
* **delay** is the event time from the event's start to the end of the first anomalous window
  that overlaps it: when the job had the evidence.

:func:`evaluate_incidents` does the same with the job's incidents as the alerts: an incident
spans from its first anomalous window's start to its last one's end (its opening window alone
while it is open); incidents marked ``learning`` are not alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorwatch.core.contracts import SCORED
from sensorwatch.core.windows import device_of


@dataclass
class Evaluation:
    events: int
    detected: int
    alerts: int
    true_alerts: int
    delays_s: list[float] = field(default_factory=list)
    per_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [detected, events]

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else float("nan")

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = np.asarray(self.delays_s) if self.delays_s else np.asarray([np.nan])
        return {
            "events": self.events,
            "detected": self.detected,
            "recall": round(self.recall, 4),
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "precision": round(self.precision, 4),
            "delay_s_median": round(float(np.nanmedian(d)), 1),
            "delay_s_max": round(float(np.nanmax(d)), 1),
            "per_kind": self.per_kind,
        }


def alerts(records: Iterable[dict]) -> dict[str, list[tuple[int, int, int]]]:
    """Per sensor: (start, end, first window end) of each run of overlapping anomalous windows."""
    by: dict[str, list[tuple[int, int]]] = {}
    for r in records:
        if r.get("status", "scored") in SCORED and r.get("is_anomaly"):
            by.setdefault(r["sensor"], []).append((int(r["window_start"]), int(r["window_end"])))
    out: dict[str, list[tuple[int, int, int]]] = {}
    for sensor, wins in by.items():
        runs: list[list[int]] = []
        for start, end in sorted(set(wins), key=lambda w: w[1]):
            if runs and start < runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end, end])
        out[sensor] = [(a, b, c) for a, b, c in runs]
    return out


def incident_alerts(records: Iterable[dict], window_ms: int, seq_len: int) -> dict[str, list[tuple[int, int, int]]]:
    """Per sensor: (start, end, first window end) of each non-learning incident in ``records``
    (incident records, opened and closed, in any order and with duplicates)."""
    latest: dict[str, dict] = {}
    for r in records:
        have = latest.get(r["incident_id"])
        if have is None or r["event"] == "closed":
            latest[r["incident_id"]] = r
    out: dict[str, list[tuple[int, int, int]]] = {}
    for r in latest.values():
        if r["learning"]:
            continue
        span = (r["start"] - seq_len * window_ms, r["end"] if r["end"] is not None else r["start"], r["start"])
        out.setdefault(r["sensor"], []).append(span)
    return {k: sorted(v) for k, v in out.items()}


def evaluate_incidents(records: Iterable[dict], labels: Iterable[dict], window_ms: int, seq_len: int) -> Evaluation:
    """:func:`evaluate` with incidents as the alerts."""
    return _evaluate(incident_alerts(records, window_ms, seq_len), labels)


def evaluate(records: Iterable[dict], labels: Iterable[dict]) -> Evaluation:
    """``records``: anomaly records (dicts); ``labels``: ``{"sensor", "kind", "start", "end"}``."""
    return _evaluate(alerts(records), labels)


def _evaluate(runs: dict[str, list[tuple[int, int, int]]], labels: Iterable[dict]) -> Evaluation:
    """Alerts keyed by a sensor answer for that sensor's labels; alerts keyed by a device (a
    device model's, no ``/``) answer for the labels of every sensor of that device."""
    labels = list(labels)
    by_label: dict[str, list[dict]] = {}
    for lab in labels:
        by_label.setdefault(lab["sensor"], []).append(lab)
        by_label.setdefault(device_of(lab["sensor"]), []).append(lab)
    true_alerts = sum(
        1
        for sensor, rs in runs.items()
        for a, b, _ in rs
        if any(a < lab["end"] and lab["start"] < b for lab in by_label.get(sensor, ()))
    )
    ev = Evaluation(events=len(labels), detected=0, alerts=sum(len(r) for r in runs.values()), true_alerts=true_alerts)
    for lab in labels:
        kind = ev.per_kind.setdefault(lab["kind"], [0, 0])
        kind[1] += 1
        mine = [*runs.get(lab["sensor"], ()), *runs.get(device_of(lab["sensor"]), ())]
        hits = [c for a, b, c in mine if a < lab["end"] and lab["start"] < b]
        if hits:
            ev.detected += 1
            kind[0] += 1
            ev.delays_s.append(max(0, min(hits) - lab["start"]) / 1000.0)
    return ev
