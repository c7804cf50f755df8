"""Per-sensor calibration of raw scores, and the incident lifecycle: the rules, written once.

A model's raw score means little on its own: a sensor whose normal changes scores high for
ever against a frozen threshold. Following Numenta HTM's *anomaly likelihood*, each sensor's
raw score is calibrated against that sensor's own recent history, using only the past:

* **Evidence**: the mean raw score of the latest ``short_windows`` windows.
* **History**: the mean and variance of the sensor's past raw scores, weighted exponentially
  over about ``horizon_windows`` windows (a plain mean until that many were seen), so the
  state per sensor is a count, two numbers and the latest few scores, whatever the horizon.
* **Calibrated score**: the upper-tail probability of the evidence under a normal
  distribution with that mean and variance. A sensor whose normal changes stops alerting once
  its history has absorbed the new level (a bounded time, about ``horizon_windows`` windows at
  worst, far sooner for a large step), while a new kind of event is still far in the tail.
* **Severity 0-100**: ``10 x -log10(tail)``, capped at 100 (a tail of 1e-4 is 40, 1e-10 is 100).

An incident **opens** at the first window whose tail probability is at most ``alert_tail``
(no second one opens while it is open), tracks its peak, and **closes** after
``close_after_windows`` normal windows in a row, its end being its last anomalous window.
During a sensor's first ``learning_windows`` windows the history is too short to calibrate:
the model's own threshold is the evidence then, and incidents opened in that time are marked
``learning`` (the operator's tools do not alert on them).

This module is the reference the streaming job's state mirrors; ``bench/nab_offline.py``
runs it on NAB, where Numenta's published defaults below score 64 (standard profile).

>>> rules = IncidentRules(learning_windows=5, short_windows=1, close_after_windows=2)
>>> tracker = IncidentTracker(rules)
>>> events = [tracker.step(t, s, threshold=10.0) for t, s in enumerate([1, 1.1, 0.9, 1, 1.05, 1, 50, 1, 1, 1])]
>>> [(e.kind, e.window_end) for ev in events for e in ev]
[('opened', 6), ('closed', 8)]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IncidentRules:
    """The rules' parameters. Defaults: Numenta HTM's published ones where HTM has one."""

    horizon_windows: int = 8640
    """HTM's historic window: the long-term statistics weigh about this many windows"""
    short_windows: int = 10
    """HTM's averaging window: the evidence is the mean score of this many latest windows"""
    learning_windows: int = 288
    """HTM's learning period: windows before the calibrated score is trusted"""
    alert_tail: float = 1e-4
    """an incident opens at a tail probability this small (likelihood >= 0.9999)"""
    close_after_windows: int = 16
    """normal windows in a row that close an incident (= the default S: no window overlaps it then)"""


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
    return max(0, min(100, round(-10.0 * math.log10(tail))))


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

    def update(self, score: float) -> float:
        """The tail probability of the evidence ending at ``score`` under the past (1.0 while
        learning), then ``score`` joins the history."""
        self.recent.append(score)
        while len(self.recent) > self.rules.short_windows:
            self.recent.popleft()
        tail = 1.0
        if not self.learning:
            evidence = sum(self.recent) / len(self.recent)
            sd = math.sqrt(self.var)
            z = (evidence - self.mean) / max(sd, 1e-9 * max(abs(self.mean), 1e-12))
            tail = 0.5 * erfc(z / math.sqrt(2.0))
        self.n += 1
        a = max(1.0 / self.n, 1.0 / self.rules.horizon_windows)
        d = score - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        return tail


@dataclass(frozen=True)
class IncidentEvent:
    """An incident's opening or closing, as the incidents topic carries it."""

    kind: str  # opened | closed
    incident: int  # the sensor's incident number, from 1
    start: int  # window end of the first anomalous window
    window_end: int  # this event's window
    end: int | None  # closed: window end of the last anomalous window
    peak_score: float
    peak_severity: int
    windows: int  # anomalous windows so far
    learning: bool


@dataclass
class IncidentTracker:
    """One sensor's calibration and incident lifecycle."""

    rules: IncidentRules = field(default_factory=IncidentRules)
    calibrator: Calibrator | None = None
    count: int = 0
    open: bool = False
    start: int = 0
    last_anomalous: int = 0
    peak_score: float = 0.0
    peak_severity: int = 0
    windows: int = 0
    normal_run: int = 0
    learning: bool = False
    last_severity: int = 0
    """the severity of the latest window (0 while learning)"""

    def __post_init__(self) -> None:
        if self.calibrator is None:
            self.calibrator = Calibrator(self.rules)

    def step(self, window_end: int, score: float, threshold: float) -> list[IncidentEvent]:
        """Feed one scored window; the events it causes (none, an opening, or a closing)."""
        learning = self.calibrator.learning
        tail = self.calibrator.update(score)
        anomalous = score > threshold if learning else tail <= self.rules.alert_tail
        sev = self.last_severity = 0 if learning else severity(tail)
        if anomalous:
            self.normal_run = 0
            if not self.open:
                self.open, self.count, self.start, self.learning = True, self.count + 1, window_end, learning
                self.peak_score, self.peak_severity, self.windows = score, sev, 0
                self._note(window_end, score, sev)
                return [self._event("opened", window_end)]
            self._note(window_end, score, sev)
            return []
        if self.open:
            self.normal_run += 1
            if self.normal_run >= self.rules.close_after_windows:
                self.open = False
                return [self._event("closed", window_end)]
        return []

    def _note(self, window_end: int, score: float, sev: int) -> None:
        self.last_anomalous = window_end
        self.windows += 1
        self.peak_score = max(self.peak_score, score)
        self.peak_severity = max(self.peak_severity, sev)

    def _event(self, kind: str, window_end: int) -> IncidentEvent:
        return IncidentEvent(
            kind,
            self.count,
            self.start,
            window_end,
            self.last_anomalous if kind == "closed" else None,
            self.peak_score,
            self.peak_severity,
            self.windows,
            self.learning,
        )
