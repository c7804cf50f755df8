"""Per-sensor calibration of raw scores, and the incident lifecycle: the rules, written once.

A model's raw score means little on its own: a sensor whose normal changes scores high for
ever against a frozen threshold. Following Numenta HTM's *anomaly likelihood*, each sensor's
raw score is calibrated against that sensor's own recent history, using only the past:

* **Evidence**: the mean raw score of the latest ``short_windows`` windows.
* **History**: the mean and variance of the sensor's past raw scores, weighted exponentially
  over about ``horizon_windows`` windows (a plain mean until that many were seen), so the
  state per sensor is a count, two numbers and the latest few scores, whatever the horizon.
* **Seed**: a model carries the mean, variance and count of its validation scores (held-out
  normal windows of the sensor's own history). The history starts from them, so a trained
  sensor needs no live learning period, and a new model version starts a new history (its
  scores live on another scale).
* **Robust history**: a score joins the history as at most ``mean + clip_sd x sd``, so an
  anomaly does not widen what the sensor counts as normal (HTM's plain statistics let one
  large spike hide the sensor's next events for days), while a lasting change still moves the
  history: its spread grows geometrically, about ``(clip_sd^2 - 1) / n`` a window.
* **Calibrated score**: the upper-tail probability of the evidence under a normal
  distribution with that mean and variance. A sensor whose normal changes stops alerting once
  its history has absorbed the new level (a bounded time, about ``horizon_windows`` windows at
  worst, far sooner for a large step), while a new kind of event is still far in the tail.
* **Severity 0-100**: ``10 x -log10(tail)``, capped at 100 (a tail of 1e-4 is 40, 1e-10 is 100).

An incident **opens** at the first window whose tail probability is at most ``alert_tail``
(no second one opens while it is open), tracks its peak and the explanation of its peak
window, and **closes** after ``close_after_windows`` normal windows in a row (``recovery``), or
at the sensor's next window after a silence of more than ``silence_windows`` (``silence``); its
end is its last anomalous window. While a sensor's history holds fewer than
``learning_windows`` windows (seed included) it is *learning*: the model's own threshold is the
evidence then, and incidents opened in that time are marked ``learning`` (not alerted).

This module is the reference: the job's ``TrackIncidents`` (Java, Flink state) mirrors it
term for term, and a test feeds both the same scores.

>>> rules = IncidentRules(learning_windows=5, short_windows=1, close_after_windows=2)
>>> tracker = IncidentTracker(rules)
>>> events = [tracker.step(t, s, threshold=10.0) for t, s in enumerate([1, 1.1, 0.9, 1, 1.05, 1, 50, 1, 1, 1])]
>>> [(e.event, e.window_end) for ev in events for e in ev]
[('opened', 6), ('closed', 8)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from sensorwatch.core.config import IncidentsConfig
from sensorwatch.core.contracts import SCORED
from sensorwatch.core.prior import prior_sensor, tag_of

#: The fields of an incident record on the incidents topic (``TrackIncidents`` writes them):
#: ``end``, ``duration_ms`` and ``closed_by`` are null on an ``opened`` record.
RECORD_FIELDS = (
    "incident_id",  # sensor@start: the same on a replay, so a consumer dedups by key
    "event",  # opened | closed
    "sensor",
    "device",
    "incident",  # the sensor's incident number, from 1
    "start",  # end of the first anomalous window (ms)
    "end",  # end of the last anomalous window (ms)
    "duration_ms",
    "closed_by",  # recovery | silence
    "event_window_end",  # the window that caused this record
    "windows",  # anomalous windows so far
    "model_name",
    "model_version",
    "peak_score",  # the highest raw score
    "threshold",  # the model's threshold at the peak
    "severity",  # 0-100, the highest so far
    "learning",  # opened while the sensor was learning: not alerted
    "explanation",  # {window_end, step, step_end, feature, kind_hint, tags} of the peak window
    "window_closed_ts",  # wall clock when the event's window closed
    "emitted_ts",  # wall clock when the record was made
)

#: The rules' parameters (one definition: the job's configuration section).
IncidentRules = IncidentsConfig


#: Severity bands (the alerts' ``severity`` label, the dashboard's bands) by the incident's
#: 0-100 severity, highest first. An incident opens at severity 40 (a tail of 1e-4); 60 is a
#: tail of 1e-6 and 80 one of 1e-8.
SEVERITY_BANDS = (("critical", 80), ("warning", 60), ("info", 0))


def severity_band(severity: float) -> str:
    """The ``severity`` label of a 0-100 severity.

    >>> [severity_band(s) for s in (40, 60, 79, 100)]
    ['info', 'warning', 'warning', 'critical']
    """
    return next(name for name, floor in SEVERITY_BANDS if severity >= floor)


def erfc(x: float) -> float:
    """The complementary error function (Numerical Recipes' erfcc: fractional error < 1.2e-7).

    Written out so that the JVM's copy computes the very same numbers.
    """
    z = abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    r = t * math.exp(poly)
    return r if x >= 0 else 2.0 - r


def severity(tail: float) -> int:
    """0-100 from a tail probability: ``10 x -log10(tail)``, capped."""
    if tail <= 0:
        return 100
    # half up, as the JVM's copy rounds (Python's round() goes to the even neighbour)
    return max(0, min(100, math.floor(-10.0 * math.log10(tail) + 0.5)))


@dataclass
class Calibrator:
    """One sensor's calibration state: update with each raw score in window order."""

    rules: IncidentRules = field(default_factory=IncidentRules)
    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    recent: deque = field(default_factory=deque)

    @property
    def learning(self) -> bool:
        return self.n < self.rules.learning_windows

    def reseed(self, seed: tuple[float, float, float] | None) -> None:
        """Start a new history from a model's ``(count, mean, variance)`` of validation scores
        (``None`` or NaNs: from nothing)."""
        self.recent.clear()
        ok = seed is not None and seed[0] > 0 and not any(math.isnan(v) for v in seed)
        self.n = int(math.floor(seed[0] + 0.5)) if ok else 0
        self.mean, self.var = (float(seed[1]), float(seed[2])) if ok else (0.0, 0.0)

    def update(self, score: float) -> float:
        """The tail probability of the evidence ending at ``score`` under the past (1.0 while
        learning), then ``score`` joins the history."""
        learning = self.learning
        self.recent.append(score)
        while len(self.recent) > self.rules.short_windows:
            self.recent.popleft()
        tail = 1.0
        if not learning:
            evidence = 0.0
            for r in self.recent:  # oldest first, the JVM's order: the same rounding
                evidence += r
            evidence /= len(self.recent)
            sd = math.sqrt(self.var)
            z = (evidence - self.mean) / max(sd, 1e-9 * max(abs(self.mean), 1e-12))
            tail = 0.5 * erfc(z / math.sqrt(2.0))
        sd = math.sqrt(self.var)
        joins = min(score, self.mean + self.rules.clip_sd * sd) if self.n > 0 and sd > 0 else score
        self.n += 1
        a = max(1.0 / self.n, 1.0 / self.rules.horizon_windows)
        d = joins - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        return tail


@dataclass(frozen=True)
class Explanation:
    """What drove a window's score: the step (0 = oldest) and feature, and a kind hint; for a
    device model, the tags that drove it (``drivers``, see :func:`sensorwatch.core.explain.drivers_text`)."""

    step: int = -1
    feature: int = -1
    hint: int = 0  # index into sensorwatch.core.explain.HINTS; 0: none
    drivers: str | None = None


@dataclass(frozen=True)
class IncidentEvent:
    """An incident's opening or closing, as the incidents topic carries it."""

    event: str  # opened | closed
    incident: int  # the sensor's incident number, from 1
    start: int  # window end of the first anomalous window
    window_end: int  # the window that caused this event
    end: int | None  # closed: window end of the last anomalous window
    closed_by: str | None  # closed: recovery | silence
    peak_score: float
    threshold: float  # the model's threshold at the peak window
    severity: int  # peak severity 0-100
    windows: int  # anomalous windows so far
    learning: bool
    version: int | None
    peak_window_end: int
    explanation: Explanation


@dataclass
class IncidentTracker:
    """One sensor's calibration and incident lifecycle (``window_ms``: for the silence timeout)."""

    rules: IncidentRules = field(default_factory=IncidentRules)
    window_ms: int = 1
    calibrator: Calibrator | None = None
    version: int | None = None
    model: str | None = None
    """the model whose scores the calibration holds (a new sensor's fleet prior, then its own)"""
    last_end: int = 0
    count: int = 0
    open: bool = False
    start: int = 0
    last_anomalous: int = 0
    peak_score: float = -math.inf
    peak_threshold: float = 0.0
    peak_severity: int = 0
    peak_end: int = 0
    peak_explanation: Explanation = Explanation()
    windows: int = 0
    normal_run: int = 0
    learning: bool = False
    last_severity: int = 0
    """the severity of the latest window (0 while learning)"""

    def __post_init__(self) -> None:
        if self.calibrator is None:
            self.calibrator = Calibrator(self.rules)

    def step(
        self,
        window_end: int,
        score: float,
        threshold: float,
        *,
        version: int = 0,
        seed: tuple[float, float, float] | None = None,
        explanation: Explanation = Explanation(),
        model: str | None = None,
    ) -> list[IncidentEvent]:
        """Feed one scored window of ``model`` ``version`` (whose validation statistics are
        ``seed``); the events it causes, in order. Another model or version starts the
        calibration again from its seed."""
        events = []
        silence = self.rules.silence_windows * self.window_ms
        if self.open and self.last_end > 0 and window_end - self.last_end > silence:
            self.open = False
            events.append(self._event("closed", self.last_end, "silence"))
        if self.version is None or self.version != version or self.model != model:
            self.calibrator.reseed(seed)
            self.version, self.model = version, model
        self.last_end = window_end
        learning = self.calibrator.learning
        tail = self.calibrator.update(score)
        anomalous = score > threshold if learning else tail <= self.rules.alert_tail
        sev = self.last_severity = 0 if learning else severity(tail)
        if anomalous:
            self.normal_run = 0
            if not self.open:
                self.open, self.count, self.start, self.learning = True, self.count + 1, window_end, learning
                self.peak_score, self.peak_severity, self.windows = -math.inf, 0, 0
                self._note(window_end, score, threshold, sev, explanation)
                return [*events, self._event("opened", window_end, None)]
            self._note(window_end, score, threshold, sev, explanation)
            return events
        if self.open:
            self.normal_run += 1
            if self.normal_run >= self.rules.close_after_windows:
                self.open = False
                events.append(self._event("closed", window_end, "recovery"))
        return events

    def _note(self, window_end: int, score: float, threshold: float, sev: int, why: Explanation) -> None:
        self.last_anomalous = window_end
        self.windows += 1
        self.peak_severity = max(self.peak_severity, sev)
        if score > self.peak_score:
            self.peak_score, self.peak_threshold, self.peak_end, self.peak_explanation = (
                score,
                threshold,
                window_end,
                why,
            )

    def _event(self, event: str, window_end: int, closed_by: str | None) -> IncidentEvent:
        closed = event == "closed"
        return IncidentEvent(
            event,
            self.count,
            self.start,
            window_end,
            self.last_anomalous if closed else None,
            closed_by,
            self.peak_score,
            self.peak_threshold,
            self.peak_severity,
            self.windows,
            self.learning,
            self.version,
            self.peak_end,
            self.peak_explanation,
        )


def explanation_phrase(why: dict | None) -> str:
    """What drove an incident, in words, from its record's ``explanation``: a device model's
    tags by share, else the kind hint and the feature. One phrasing for every place an operator
    reads it (``sensorwatch tail``, the demo, the alert's summary).

    >>> explanation_phrase({"kind_hint": "dropout", "feature": "count"})
    'dropout in count'
    >>> explanation_phrase({"tags": [{"tag": "flow", "share": 0.7}, {"tag": "power", "share": 0.3}]})
    'driven by flow 70%, power 30%'
    >>> explanation_phrase(None)
    'no kind hint'
    """
    why = why or {}
    if why.get("tags"):
        return "driven by " + ", ".join(f"{t['tag']} {100 * t['share']:.0f}%" for t in why["tags"])
    hint = why.get("kind_hint") or "no kind hint"
    return f"{hint} in {why['feature']}" if why.get("feature") else hint


def reference_steps(
    rules: IncidentRules, window_ms: int, records, seeds: dict
) -> Iterator[tuple[str, dict, IncidentTracker, list[IncidentEvent]]]:
    """These rules run over ``records``, a job's own per-window score records (status
    ``scored``, or ``prior``), each sensor's in event-time order: ``(sensor, record, tracker,
    events)`` after each step. ``seeds``: a model's incident seed by ``(sensor, version)`` or by
    sensor (:func:`sensorwatch.serving.repository.incident_seeds`); a fleet prior's is under
    ``*/<tag>``."""
    by_sensor: dict[str, list[dict]] = {}
    for r in records:
        if r.get("status", "scored") in SCORED:
            by_sensor.setdefault(r["sensor"], []).append(r)
    for sensor, recs in by_sensor.items():
        tracker = IncidentTracker(rules, window_ms)
        for r in sorted(recs, key=lambda r: r["window_end"]):
            key = prior_sensor(tag_of(sensor)) if r.get("status") == "prior" else sensor
            events = tracker.step(
                r["window_end"],
                float(r["score"]),
                float(r["threshold"]),
                version=r["model_version"],
                model=r.get("model_name"),
                seed=seeds.get((key, int(r["model_version"])), seeds.get(key)),
            )
            yield sensor, r, tracker, events


def reference_openings(rules: IncidentRules, window_ms: int, records, seeds: dict) -> dict[str, set[tuple[int, bool]]]:
    """Sensor -> ``(start, learning)`` of every incident these rules open over ``records``
    (:func:`reference_steps`).

    The job's incident stage runs the same rules in Flink state; a test (or a benchmark) that
    compares its opened incidents with these checks that state, whatever happened to it on the
    way (a restore, keys moved between slots), without trusting the job to say what it owes.
    """
    out: dict[str, set[tuple[int, bool]]] = {}
    for sensor, _r, _tracker, events in reference_steps(rules, window_ms, records, seeds):
        out.setdefault(sensor, set()).update((e.start, e.learning) for e in events if e.event == "opened")
    return out
