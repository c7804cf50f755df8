"""How incidents reach an operator: ``sensorwatch tail``'s line and the demo's evaluation."""

from __future__ import annotations

from sensorwatch.app.cli.common import incident_line
from sensorwatch.app.evaluate import evaluate_incidents

W, S = 5000, 16


def _rec(sensor, start, event="opened", end=None, learning=False, **kw):
    rec = dict(
        incident_id=f"{sensor}@{start}",
        event=event,
        sensor=sensor,
        start=start,
        end=end,
        learning=learning,
        severity=57,
        peak_score=9.5,
        threshold=2.0,
        model_name="packed-001",
        model_version=3,
        explanation={"feature": "count", "kind_hint": "dropout"},
    )
    return {**rec, **kw}


def test_tail_prints_one_line_per_incident_record():
    line = incident_line(_rec("dev-1/temp", 3_600_000))
    assert line.startswith("OPENED dev-1/temp since 01:00:00: severity 57, dropout in count, peak score 9.50")
    assert "packed-001 v3" in line and "learning" not in line
    closed = incident_line(_rec("dev-1/temp", 3_600_000, "closed", end=3_660_000, learning=True))
    assert closed.startswith("CLOSED dev-1/temp 01:00:00 to 01:01:00") and closed.endswith("[learning: not alerted]")
    bare = incident_line(_rec("d/t", 0, explanation={"feature": None, "kind_hint": None}))
    assert "no kind hint," in bare


def test_incidents_are_the_alerts_once_each_and_learning_ones_are_not():
    labels = [
        {"sensor": "a/x", "kind": "spike", "start": 100_000, "end": 130_000},
        {"sensor": "b/x", "kind": "stuck", "start": 500_000, "end": 600_000},
    ]
    recs = [
        _rec("a/x", 120_000),
        _rec("a/x", 120_000),  # at-least-once: the same record twice
        _rec("a/x", 120_000, "closed", end=180_000),
        _rec("a/x", 2_000_000),  # far from any label: a false alert
        _rec("b/x", 550_000, learning=True),  # learning: not an alert, so b's event is missed
    ]
    ev = evaluate_incidents(recs, labels, W, S)
    assert (ev.alerts, ev.true_alerts, ev.detected, ev.events) == (2, 1, 1, 2)
    assert ev.per_kind == {"spike": [1, 1], "stuck": [0, 1]}
    assert ev.delays_s == [20.0]  # first window end 120 s, event start 100 s
