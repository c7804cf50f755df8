"""The reference calibration and incident rules: regime changes stop alerting, new events still do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorwatch.core.incidents import Calibrator, IncidentRules, IncidentTracker, erfc, severity

RULES = IncidentRules(learning_windows=100, close_after_windows=16)
#: one-window evidence: the lifecycle's exact windows, without the 10-window mean smoothing
EXACT = IncidentRules(learning_windows=100, close_after_windows=16, short_windows=1)


def _run(tracker: IncidentTracker, scores, threshold: float = 1e9, start: int = 0):
    return [e for t, s in enumerate(scores, start) for e in tracker.step(t, float(s), threshold)]


def test_erfc_matches_the_standard_library_to_its_stated_precision():
    for x in np.linspace(-6, 8, 2001):
        assert erfc(float(x)) == pytest.approx(math.erfc(x), rel=2e-7, abs=1e-300)


def test_severity_is_ten_times_minus_log10_of_the_tail_capped():
    assert [severity(t) for t in (1.0, 0.1, 1e-4, 1e-10, 1e-30, 0.0)] == [0, 10, 40, 100, 100, 100]


def test_a_regime_change_alerts_once_and_then_stops():
    rng = np.random.default_rng(0)
    tracker = IncidentTracker(RULES)
    base = rng.normal(1.0, 0.1, 500)
    shifted = rng.normal(5.0, 0.5, 3000)  # the new normal: scores stay high for good
    events = _run(tracker, np.r_[base, shifted])
    opened = [e for e in events if e.event == "opened"]
    closed = [e for e in events if e.event == "closed"]
    assert len(opened) == 1 and opened[0].start >= 500 and not opened[0].learning
    assert len(closed) == 1, "the new level becomes the sensor's normal: the incident closes"
    assert closed[0].window_end - 500 < 500, f"closed after {closed[0].window_end - 500} windows"
    assert not tracker.open


def test_a_new_kind_of_event_still_alerts_after_the_regime_settles():
    rng = np.random.default_rng(1)
    tracker = IncidentTracker(EXACT)
    settled = np.r_[rng.normal(1.0, 0.1, 500), rng.normal(5.0, 0.5, 2000)]
    _run(tracker, settled)
    assert not tracker.open
    spike = np.r_[np.full(3, 60.0), rng.normal(5.0, 0.5, 40)]
    events = _run(tracker, spike, start=len(settled))
    assert [e.event for e in events] == ["opened", "closed"], events
    assert events[0].window_end == len(settled) and events[0].severity >= 40
    assert events[1].end == len(settled) + 2 and events[1].windows == 3


def test_no_second_incident_while_one_is_open_and_close_after_k_normal_windows():
    rng = np.random.default_rng(2)
    tracker = IncidentTracker(EXACT)
    _run(tracker, rng.normal(1.0, 0.1, 300))
    burst = [50, 1, 50, 1, 1, 50]  # anomalous windows with short normal gaps: one incident
    events = _run(tracker, np.r_[burst, rng.normal(1.0, 0.1, 15)], start=300)
    assert [e.event for e in events] == ["opened"] and tracker.open
    events = _run(tracker, rng.normal(1.0, 0.1, 1), start=321)
    assert [e.event for e in events] == ["closed"] and events[0].end == 305 and events[0].windows == 3


def test_a_new_sensor_learns_first_and_its_incidents_are_marked_learning():
    tracker = IncidentTracker(RULES)
    events = _run(tracker, [1.0] * 10 + [20.0] + [1.0] * 30, threshold=10.0)
    assert [(e.event, e.learning) for e in events] == [("opened", True), ("closed", True)]
    assert tracker.calibrator.learning  # 41 of 100 learning windows seen


def test_calibration_uses_only_the_past():
    c = Calibrator(IncidentRules(learning_windows=3, short_windows=1))
    for s in (1.0, 2.0, 3.0):
        assert c.update(s) == 1.0  # learning
    mean, var = c.mean, c.var
    tail = c.update(100.0)
    assert tail < 1e-6 and (mean, var) != (c.mean, c.var)  # scored against the past, then learned


def test_the_default_evidence_smooths_a_burst_into_one_incident():
    rng = np.random.default_rng(3)
    tracker = IncidentTracker(RULES)
    _run(tracker, rng.normal(1.0, 0.1, 300))
    events = _run(tracker, np.r_[[50, 1, 1, 50], rng.normal(1.0, 0.1, 60)], start=300)
    assert [e.event for e in events] == ["opened", "closed"] and events[0].window_end == 300
    assert events[1].window_end - events[1].end == RULES.close_after_windows
